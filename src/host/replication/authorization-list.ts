/**
 * The replica host's authorization list (Hyper-V Replica's authorization entries): which primary hosts
 * may replicate into which storage location, under which trust group. Enforced locally on every
 * connection, even if the control plane is compromised: once right after the TLS handshake (the peer's
 * certificate identity must match some entry) and again on HELLO (the pair host + storage location must
 * match one entry). A storage location is a name the replica's own config maps to a directory; a path
 * never comes from the wire.
 *
 * Host patterns: an exact host id, or '*' as the whole first label ('*.site-b.example' matches
 * 'h1.site-b.example', not 'site-b.example' nor 'a.h1.site-b.example').
 *
 * Trust groups: a host id is only a name, and each site's CA names its own hosts; a replica that trusts
 * the CAs of several sites must not let one site's CA speak for another's hosts. So when the list is
 * given the issuers of each trust group (CA certificate SHA-256 fingerprints), an entry matches a peer
 * only if the peer's certificate was issued by a CA of the entry's trust group; an entry whose trust
 * group has no issuers matches nobody.
 */
import { SecondsiteError } from '../../domain/errors.js';
import { ENROLMENT_SERVER_CN, MANAGER_CALLER_CN } from '../../protocol/host-api/enrolment.schema.js';

/** Names of the management server's own certificates: never a primary host, whatever a pattern says. */
const RESERVED_NAMES: ReadonlySet<string> = new Set([MANAGER_CALLER_CN, ENROLMENT_SERVER_CN]);

export interface AuthorizationEntry {
  readonly primaryHostId: string;
  readonly storageLocation: string;
  readonly trustGroup: string;
}

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const HOST_PATTERN_RE = new RegExp(`^(?:\\*|${LABEL})(?:\\.${LABEL})*$`);
/** Storage location and trust group names: plain names, never paths. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

function hostMatches(pattern: string, hostId: string): boolean {
  if (RESERVED_NAMES.has(hostId)) return false;
  if (!pattern.startsWith('*')) return pattern === hostId;
  const suffix = pattern.slice(1); // '.site-b.example' or ''
  if (!hostId.endsWith(suffix)) return false;
  const first = hostId.slice(0, hostId.length - suffix.length);
  return first.length > 0 && !first.includes('.');
}

/** Trust group -> fingerprints (`X509Certificate.fingerprint256`) of the CAs that issue its hosts. */
export type TrustGroupIssuers = ReadonlyMap<string, ReadonlySet<string>>;

export class AuthorizationList {
  private readonly entries: readonly AuthorizationEntry[];

  /**
   * Validates every entry; throws SECONDSITE_ERR_INVALID_ARGUMENT naming the bad one. Without
   * `issuers`, any CA the TLS layer trusts may issue any entry's host (a single-CA setup).
   */
  constructor(
    entries: readonly AuthorizationEntry[],
    private readonly issuers?: TrustGroupIssuers,
  ) {
    for (const e of entries) {
      if (!HOST_PATTERN_RE.test(e.primaryHostId)) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `authorization entry host '${e.primaryHostId}' is not a host id or a pattern with '*' as its whole first label`,
          { primaryHostId: e.primaryHostId },
        );
      }
      for (const [field, v] of [
        ['storageLocation', e.storageLocation],
        ['trustGroup', e.trustGroup],
      ] as const) {
        if (!NAME_RE.test(v)) {
          throw new SecondsiteError(
            'SECONDSITE_ERR_INVALID_ARGUMENT',
            `authorization entry ${field} '${v}' must be a plain name (letters, digits, '-', '_'), not a path`,
            { field, value: v },
          );
        }
      }
    }
    this.entries = entries.map((e) => Object.freeze({ ...e }));
  }

  /** The entries, for reports. */
  list(): readonly AuthorizationEntry[] {
    return this.entries;
  }

  private issuedBy(e: AuthorizationEntry, issuerFingerprint: string | null): boolean {
    if (!this.issuers) return true;
    return issuerFingerprint !== null && (this.issuers.get(e.trustGroup)?.has(issuerFingerprint) ?? false);
  }

  /**
   * The CAs that issue `hostId`'s certificates, from the entries that name it exactly (a replica of
   * this host is also a primary toward it: reverse replication); null when none does or the list has
   * no trust groups, so the host is not pinned.
   */
  issuersOf(hostId: string): ReadonlySet<string> | null {
    if (!this.issuers) return null;
    const exact = this.entries.filter((e) => e.primaryHostId === hostId);
    if (exact.length === 0) return null;
    return new Set(exact.flatMap((e) => [...(this.issuers?.get(e.trustGroup) ?? [])]));
  }

  /**
   * True if some entry names this host under a trust group whose CA issued its certificate (checked
   * right after the handshake). `issuerFingerprint`: the peer certificate's issuer, null if unknown.
   */
  allowsHost(hostId: string, issuerFingerprint: string | null = null): boolean {
    return this.entries.some(
      (e) => hostMatches(e.primaryHostId, hostId) && this.issuedBy(e, issuerFingerprint),
    );
  }

  /** The entry allowing `hostId` into `storageLocation`; exact host entries win over patterns. */
  authorize(
    hostId: string,
    storageLocation: string,
    issuerFingerprint: string | null = null,
  ): AuthorizationEntry {
    const matching = this.entries.filter(
      (e) =>
        e.storageLocation === storageLocation &&
        hostMatches(e.primaryHostId, hostId) &&
        this.issuedBy(e, issuerFingerprint),
    );
    const found = matching.find((e) => e.primaryHostId === hostId) ?? matching[0];
    if (!found) throw notAuthorized(hostId, storageLocation);
    return found;
  }
}

export function notAuthorized(hostId: string, storageLocation: string | null): SecondsiteError {
  const where = storageLocation === null ? 'any storage location' : `storage location '${storageLocation}'`;
  return new SecondsiteError(
    'SECONDSITE_ERR_PEER_NOT_AUTHORIZED',
    `primary host '${hostId}' is not authorized to replicate into ${where} on this replica host: add an authorization entry for it on the replica`,
    { primaryHostId: hostId, storageLocation },
  );
}

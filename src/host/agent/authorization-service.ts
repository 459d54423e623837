/**
 * This host's authorization list and trust groups (docs/design/vault.md section 6.2): host.json's
 * entries plus a managed part (`<stateDir>/authorization.json`, replaced whole and atomically by the
 * host's management server or `secondsite host authorization set`).
 *
 * Trust: host.json's entries are issued by this host's own CA (`ca.crt` in the PKI folder); a managed
 * trust group names the CA(s) of another site, whose hosts then may replicate into the storage
 * locations its entries allow, and only those (AuthorizationList checks the issuer). The TLS layer
 * trusts the union: the local CA and every managed group's CA, on the replica's listener and on this
 * host's own connections to replicas of another site.
 *
 * Invariants: a managed list that names a storage location this host does not have, or a trust
 * group it does not define, or a certificate that is not a CA, is refused whole (nothing changes);
 * a revision older than the one held is refused (a late push from a manager must not undo a newer
 * one); the file is replaced atomically, so a crash leaves the old list or the new one.
 */
import { join } from 'node:path';
import { SecondsiteError } from '../../domain/errors.js';
import {
  managedAuthorizationSchema,
  type AuthorizationView,
  type ManagedAuthorization,
} from '../../protocol/host-api/authorization.schema.js';
import { parseBody } from '../../protocol/host-api/schema.js';
import { readWholeFile, replaceFileAtomically } from '../disks/atomic-file.js';
import { AuthorizationList, type AuthorizationEntry } from '../replication/authorization-list.js';
import { certificatesOf } from '../pki/tls-config.js';
import type { Storage } from '../storage/storage.js';
import type { HostConfig } from './host-config.js';

const EMPTY: ManagedAuthorization = { revision: 0, entries: [], trustGroups: [] };

export class AuthorizationService {
  private managed: ManagedAuthorization = EMPTY;
  private localCaFingerprints: string[] = [];
  private built: AuthorizationList;
  private readonly listeners: Array<() => Promise<void>> = [];

  private constructor(
    private readonly storage: Storage,
    private readonly config: HostConfig,
  ) {
    this.built = this.build();
  }

  private get path(): string {
    return join(this.config.stateDir, 'authorization.json');
  }

  /** Loads the managed list (none yet is fine) and the local CA's fingerprints. */
  static async open(
    storage: Storage,
    config: HostConfig,
    localCaPem: string | null,
  ): Promise<AuthorizationService> {
    const s = new AuthorizationService(storage, config);
    s.setLocalCa(localCaPem);
    const raw = await readWholeFile(storage, s.path);
    if (raw !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `${s.path} is not valid JSON: set the managed authorization list again ('secondsite host authorization set', or refresh from the management server) after removing it`,
          { path: s.path },
        );
      }
      s.managed = s.validate(
        parseBody(managedAuthorizationSchema, parsed, `managed authorization list ${s.path}`),
      );
    }
    s.built = s.build();
    return s;
  }

  /** The local CA changed (the host enrolled or got a new certificate). */
  setLocalCa(localCaPem: string | null): void {
    this.localCaFingerprints =
      localCaPem === null ? [] : certificatesOf(localCaPem, 'ca.crt').map((c) => c.fingerprint256);
    this.built = this.build();
  }

  /** Called after each change (the agent reloads TLS trust). */
  onChange(listener: () => Promise<void>): void {
    this.listeners.push(listener);
  }

  /** The authorization list in force. */
  list(): AuthorizationList {
    return this.built;
  }

  /** CA certificates (PEM) of the managed trust groups, for the TLS trust store beside ca.crt. */
  trustedCaPems(): string[] {
    return this.managed.trustGroups.map((g) => g.caCertPem);
  }

  view(): AuthorizationView {
    return {
      revision: this.managed.revision,
      entries: [
        ...this.config.replication.authorization.map((e) => ({ ...e, source: 'host.json' as const })),
        ...this.managed.entries.map((e) => ({ ...e, source: 'managed' as const })),
      ],
      trustGroups: [
        ...this.localGroups().map((name) => ({
          name,
          source: 'local-ca' as const,
          caFingerprints: this.localCaFingerprints,
        })),
        ...this.managed.trustGroups.map((g) => ({
          name: g.name,
          source: 'managed' as const,
          caFingerprints: certificatesOf(g.caCertPem, `trust group ${g.name}`).map((c) => c.fingerprint256),
        })),
      ],
    };
  }

  /**
   * Replaces the managed part whole (idempotent for the same revision and content). Refuses an older
   * revision, and a list that does not fit this host, naming every problem.
   */
  async replace(body: unknown): Promise<AuthorizationView> {
    const next = this.validate(parseBody(managedAuthorizationSchema, body, 'managed authorization list'));
    if (next.revision < this.managed.revision) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `this host holds managed authorization revision ${this.managed.revision}; revision ${next.revision} is older and was not applied (refresh from the management server)`,
        { held: this.managed.revision, given: next.revision },
      );
    }
    if (next.revision === this.managed.revision && JSON.stringify(next) === JSON.stringify(this.managed)) {
      return this.view();
    }
    if (next.revision === this.managed.revision) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `revision ${next.revision} is already applied with other content: send a higher revision`,
        { revision: next.revision },
      );
    }
    await replaceFileAtomically(this.storage, this.path, Buffer.from(JSON.stringify(next, null, 2)));
    this.managed = next;
    this.built = this.build();
    for (const l of this.listeners) await l();
    return this.view();
  }

  private validate(m: ManagedAuthorization): ManagedAuthorization {
    const problems: string[] = [];
    const groups = new Set<string>();
    for (const g of m.trustGroups) {
      if (groups.has(g.name)) problems.push(`trust group '${g.name}' is defined twice`);
      groups.add(g.name);
      try {
        for (const c of certificatesOf(g.caCertPem, `trust group '${g.name}'`)) {
          if (!c.ca)
            problems.push(`trust group '${g.name}': certificate '${c.subject}' is not a CA certificate`);
        }
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    for (const e of m.entries) {
      if (!groups.has(e.trustGroup))
        problems.push(
          `entry for '${e.primaryHostId}' names trust group '${e.trustGroup}', which the list does not define`,
        );
      if (!Object.prototype.hasOwnProperty.call(this.config.replication.storageLocations, e.storageLocation))
        problems.push(
          `entry for '${e.primaryHostId}' names storage location '${e.storageLocation}', which this host does not have (host.json replication.storageLocations: ${Object.keys(this.config.replication.storageLocations).join(', ') || 'none'})`,
        );
    }
    if (problems.length > 0) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `managed authorization list refused, nothing changed: ${problems.join('; ')}`,
        { problems },
      );
    }
    // surface pattern/name errors of entries now rather than at the next connection
    new AuthorizationList(m.entries);
    return m;
  }

  /** Trust groups of host.json's entries: issued by the local CA unless a managed group redefines them. */
  private localGroups(): string[] {
    const managed = new Set(this.managed.trustGroups.map((g) => g.name));
    return [...new Set(this.config.replication.authorization.map((e) => e.trustGroup))].filter(
      (g) => !managed.has(g),
    );
  }

  private build(): AuthorizationList {
    const issuers = new Map<string, Set<string>>();
    for (const g of this.localGroups()) issuers.set(g, new Set(this.localCaFingerprints));
    for (const g of this.managed.trustGroups) {
      issuers.set(
        g.name,
        new Set(certificatesOf(g.caCertPem, `trust group ${g.name}`).map((c) => c.fingerprint256)),
      );
    }
    const entries: AuthorizationEntry[] = [...this.config.replication.authorization, ...this.managed.entries];
    return new AuthorizationList(entries, issuers);
  }
}

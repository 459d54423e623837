/**
 * The management server as a caller of this host's peer API (docs/design/vault.md section 6).
 *
 * A host enrolled into a management server (`secondsite host enroll`) keeps `<stateDir>/manager.json`:
 * the name its manager calls with (`manager.site`) and the site CA that issued the manager's
 * certificate. A peer connection is the manager's only when all of these hold:
 *   - TLS verified the client certificate (against the host's trust anchors, which may hold several
 *     CAs: another site's CA for cross-site replication, say);
 *   - its CN is `manager.site` and that name is also its DNS SAN;
 *   - it was issued (and signed) by exactly the site CA of manager.json, so another site's CA issuing
 *     `manager.site` is refused; host certificates (CN = host id, never with a dot) are refused too.
 *
 * The peer dispatcher names its caller with `peerCallerOf` (the manager, or a host by its host id, or
 * nobody), and every `/peer/v1/manager/*` route starts with `requireManagerCaller`. The connection
 * admission of the replication port uses `isManagerConnection`. manager.json is read when the agent
 * starts: enrolling again needs an agent restart (the CLI says so), as the new certificate does.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { z } from 'zod';
import { SecondsiteError } from '../../domain/errors.js';
import { MANAGER_CALLER_CN } from '../../protocol/host-api/enrolment.schema.js';
import { peerHostId } from '../pki/tls-config.js';

export { MANAGER_CALLER_CN };

export const managerFileSchema = z
  .object({
    format: z.literal('secondsite-manager-1'),
    hostId: z.string(),
    managementServerName: z.string(),
    /** The enrolment listener this host enrolled at. */
    managerUrl: z.string(),
    /** The CN (and DNS SAN) of the manager's client certificate. */
    managerCommonName: z.string(),
    /** X509Certificate.fingerprint256 of the site CA. */
    siteCaFingerprint256: z.string(),
    siteCaCertPem: z.string(),
    enrolledAt: z.string(),
  })
  .strict();

export type ManagerFile = z.infer<typeof managerFileSchema>;

/** Who this host's manager is, as the guard needs it. */
export interface ManagerTrust {
  readonly managerCommonName: string;
  readonly siteCa: X509Certificate;
  readonly siteCaFingerprint256: string;
}

export function managerFilePath(stateDir: string): string {
  return join(stateDir, 'manager.json');
}

/** The trust in `<stateDir>/manager.json`, or null when this host was never enrolled. */
export async function loadManagerTrust(stateDir: string): Promise<ManagerTrust | null> {
  const path = managerFilePath(stateDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const parsed = managerFileSchema.safeParse(JSON.parse(text));
  const siteCa = parsed.success ? new X509Certificate(parsed.data.siteCaCertPem) : null;
  if (!parsed.success || !siteCa || siteCa.fingerprint256 !== parsed.data.siteCaFingerprint256) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `${path} is damaged (not a manager file, or its site CA does not match its fingerprint); enrol the host again with 'secondsite host enroll --key FILE'`,
      { path },
    );
  }
  return {
    managerCommonName: parsed.data.managerCommonName,
    siteCa,
    siteCaFingerprint256: parsed.data.siteCaFingerprint256,
  };
}

function commonNameOf(cert: X509Certificate): string | null {
  const cns = cert.subject
    .split('\n')
    .filter((l) => l.startsWith('CN='))
    .map((l) => l.slice(3));
  return cns.length === 1 ? (cns[0] ?? null) : null;
}

/**
 * Whether `cert` (a client certificate TLS already verified) is this host's manager: CN and DNS SAN
 * `manager.site`, issued and signed by the site CA of manager.json.
 */
export function isManagerCertificate(cert: X509Certificate, trust: ManagerTrust | null): boolean {
  if (!trust) return false;
  if (commonNameOf(cert) !== trust.managerCommonName) return false;
  const sans = (cert.subjectAltName ?? '').split(',').map((s) => s.trim());
  if (!sans.includes(`DNS:${trust.managerCommonName}`)) return false;
  return cert.checkIssued(trust.siteCa) && cert.verify(trust.siteCa.publicKey);
}

/** Whether this authenticated TLS connection is this host's manager. */
export function isManagerConnection(socket: TLSSocket, trust: ManagerTrust | null): boolean {
  if (!trust || !socket.authorized) return false;
  const peer = socket.getPeerX509Certificate();
  return peer !== undefined && isManagerCertificate(peer, trust);
}

/**
 * The caller of a peer connection as routes see it (`RouteRequest.callerHostId`): `manager.site` for
 * this host's manager, a host id for another host, undefined for anyone else (including a
 * `manager.site` certificate this host's site CA did not issue).
 */
export function peerCallerOf(socket: TLSSocket, trust: ManagerTrust | null): string | undefined {
  const id = peerHostId(socket);
  if (id === null) return undefined;
  if (id === MANAGER_CALLER_CN) {
    return isManagerConnection(socket, trust) ? MANAGER_CALLER_CN : undefined;
  }
  return id;
}

/** Refuses a `/peer/v1/manager/*` request from anyone but this host's manager. */
export function requireManagerCaller(callerHostId: string | undefined): void {
  if (callerHostId !== MANAGER_CALLER_CN) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_UNAUTHORIZED',
      "only this host's management server may call this (a client certificate for manager.site from the site CA this host enrolled with)",
    );
  }
}

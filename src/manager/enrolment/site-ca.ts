/**
 * The management server's site CA (docs/design/vault.md section 6): made on first need in
 * `<dataDir>/site-ca/` (0700; `ca.key` 0600), it signs the certificates of the hosts that enrol, the
 * manager's client certificate for calling them (`manager.key|crt`, CN `manager.site`) and the
 * enrolment listener's server certificate (`enrol.key|crt`, CN `enrol.manager.site`). Both of the
 * manager's certificates are made again when missing or due (less than a third of their lifetime left;
 * the management server looks every hour and swaps them in: docs/design/certificate-renewal.md
 * section 6), each installed as a crash-safe pair (pki/key-cert-pair.ts).
 */
import { X509Certificate } from 'node:crypto';
import { chmod, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isSecondsiteError } from '../../domain/errors.js';
import { renewalDue } from '../../domain/pki/renewal-due.js';
import { caPaths, exists, initCa } from '../../pki/ca.js';
import { signCsr } from '../../pki/csr.js';
import {
  createPendingKey,
  installPending,
  keyCertPairPaths,
  readKeyCertPair,
  recoverKeyCertPair,
} from '../../pki/key-cert-pair.js';
import { ENROLMENT_SERVER_CN, MANAGER_CALLER_CN } from '../../protocol/host-api/enrolment.schema.js';

const MANAGER_CERT_DAYS = 825;

export interface KeyAndCert {
  readonly keyPem: string;
  readonly certPem: string;
}

export interface SiteCa {
  /** The folder holding `ca.key` and `ca.crt` (what signCsr takes). */
  readonly caDir: string;
  readonly caCertPem: string;
  /** As X509Certificate.fingerprint256 prints it (upper-case hex pairs with colons). */
  readonly fingerprint256: string;
  /** The manager's client certificate for the hosts' peer API (CN `manager.site`). */
  readonly manager: KeyAndCert;
  /** The enrolment listener's server certificate (CN `enrol.manager.site`). */
  readonly enrolmentServer: KeyAndCert;
}

export function siteCaDir(dataDir: string): string {
  return join(dataDir, 'site-ca');
}

/**
 * The site CA of the management server in `dataDir`, made (with the manager's certificates) if
 * missing; certificates that are due are issued again (`remainingFraction`: renewal-due.ts). Only the
 * management server process calls it (one call at a time: it installs pairs).
 */
export async function ensureSiteCa(
  dataDir: string,
  managementServerName: string,
  remainingFraction?: number,
): Promise<SiteCa> {
  const caDir = siteCaDir(dataDir);
  const ca = caPaths(caDir);
  if (!(await exists(ca.keyPath))) {
    await initCa(caDir, { name: `secondsite site CA of ${managementServerName}`.slice(0, 64) });
  }
  await chmod(caDir, 0o700);
  const caCertPem = await readFile(ca.certPath, 'utf8');
  const manager = await ensureIssued(caDir, 'manager', MANAGER_CALLER_CN, 'clientAuth', remainingFraction);
  const enrolmentServer = await ensureIssued(
    caDir,
    'enrol',
    ENROLMENT_SERVER_CN,
    'serverAuth',
    remainingFraction,
  );
  return {
    caDir,
    caCertPem,
    fingerprint256: new X509Certificate(caCertPem).fingerprint256,
    manager,
    enrolmentServer,
  };
}

async function ensureIssued(
  caDir: string,
  name: string,
  commonName: string,
  usage: 'clientAuth' | 'serverAuth',
  remainingFraction: number | undefined,
): Promise<KeyAndCert> {
  const paths = keyCertPairPaths(caDir, name);
  await recoverKeyCertPair(paths);
  // missing, or a key and certificate that differ: issued again (the CA is here)
  const current = await readKeyCertPair(paths).catch((e: unknown) => {
    if (isSecondsiteError(e, 'SECONDSITE_ERR_NOT_FOUND') || isSecondsiteError(e, 'SECONDSITE_ERR_INTERNAL'))
      return null;
    throw e;
  });
  if (current) {
    const x = new X509Certificate(current.certPem);
    const validity = { notBeforeMs: Date.parse(x.validFrom), notAfterMs: Date.parse(x.validTo) };
    if (!renewalDue(validity, Date.now(), remainingFraction)) return current;
  }
  const csrPem = await createPendingKey(paths, commonName);
  const signed = await signCsr({ caDir, csrPem, commonName, usage, days: MANAGER_CERT_DAYS });
  return installPending(paths, signed.certPem);
}

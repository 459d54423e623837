/**
 * The management server's site CA (docs/design/vault.md section 6): made on first need in
 * `<dataDir>/site-ca/` (0700; `ca.key` 0600), it signs the certificates of the hosts that enrol, the
 * manager's client certificate for calling them (`manager.key|crt`, CN `manager.site`) and the
 * enrolment listener's server certificate (`enrol.key|crt`, CN `enrol.manager.site`). Both of the
 * manager's certificates are made again when missing or within 30 days of their end.
 */
import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { caPaths, exists, initCa } from '../../pki/ca.js';
import { createKeyAndCsr, signCsr } from '../../pki/csr.js';
import { ENROLMENT_SERVER_CN, MANAGER_CALLER_CN } from '../../protocol/host-api/enrolment.schema.js';

const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;

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

/** The site CA of the management server in `dataDir`, made (with the manager's certificates) if missing. */
export async function ensureSiteCa(dataDir: string, managementServerName: string): Promise<SiteCa> {
  const caDir = siteCaDir(dataDir);
  const ca = caPaths(caDir);
  if (!(await exists(ca.keyPath))) {
    await initCa(caDir, { name: `secondsite site CA of ${managementServerName}`.slice(0, 64) });
  }
  await chmod(caDir, 0o700);
  const caCertPem = await readFile(ca.certPath, 'utf8');
  const manager = await ensureIssued(caDir, 'manager', MANAGER_CALLER_CN, 'clientAuth');
  const enrolmentServer = await ensureIssued(caDir, 'enrol', ENROLMENT_SERVER_CN, 'serverAuth');
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
): Promise<KeyAndCert> {
  const keyPath = join(caDir, `${name}.key`);
  const certPath = join(caDir, `${name}.crt`);
  if ((await exists(keyPath)) && (await exists(certPath))) {
    const certPem = await readFile(certPath, 'utf8');
    if (Date.parse(new X509Certificate(certPem).validTo) - Date.now() > RENEW_BEFORE_MS) {
      return { keyPem: await readFile(keyPath, 'utf8'), certPem };
    }
  }
  await mkdir(caDir, { recursive: true, mode: 0o700 });
  const newKey = `${keyPath}.new`;
  const csrPem = await createKeyAndCsr(newKey, commonName);
  const signed = await signCsr({ caDir, csrPem, commonName, usage, days: 825 });
  await writeFile(`${certPath}.new`, signed.certPem);
  await rename(newKey, keyPath);
  await rename(`${certPath}.new`, certPath);
  return { keyPem: await readFile(keyPath, 'utf8'), certPem: signed.certPem };
}

/** A throwaway site CA with two host identities for the replication benchmarks (host-a primary, host-b replica). */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { caPaths, initCa } from '../../src/pki/ca.js';
import { createKeyAndCsr, issueHostCert, signCsr } from '../../src/pki/csr.js';

export const PRIMARY_HOST = 'host-a';
export const REPLICA_HOST = 'host-b';

/** Creates `<dir>/ca` and the identities in `<dir>/tls`; returns the identity folder. */
export async function createBenchPki(dir: string): Promise<string> {
  const caDir = join(dir, 'ca');
  const tlsDir = join(dir, 'tls');
  await initCa(caDir);
  for (const name of [PRIMARY_HOST, REPLICA_HOST]) await issueHostCert({ caDir, name, outDir: tlsDir });
  return tlsDir;
}

/**
 * A certificate folder in the layout qemu-nbd (`tls-creds-x509,dir=`) and libnbd (`tls-certificates=`)
 * both read: ca-cert.pem, server-cert.pem/-key.pem, client-cert.pem/-key.pem. One identity signed by
 * the bench CA of `createBenchPki(dir)` serves both ends; its subjectAltName is IP 127.0.0.1, the
 * address libnbd checks the server against. Returns the folder.
 */
export async function createNbdTlsDir(dir: string): Promise<string> {
  const caDir = join(dir, 'ca');
  const out = join(dir, 'nbd-tls');
  await mkdir(out, { recursive: true, mode: 0o700 });
  const csrPem = await createKeyAndCsr(join(out, 'server-key.pem'), 'loopback');
  const signed = await signCsr({
    caDir,
    csrPem,
    commonName: 'loopback',
    usage: 'serverAuth,clientAuth',
    ipSans: ['127.0.0.1'],
  });
  await writeFile(join(out, 'server-cert.pem'), signed.certPem);
  await writeFile(join(out, 'client-cert.pem'), signed.certPem);
  await copyFile(join(out, 'server-key.pem'), join(out, 'client-key.pem'));
  await copyFile(caPaths(caDir).certPath, join(out, 'ca-cert.pem'));
  return out;
}

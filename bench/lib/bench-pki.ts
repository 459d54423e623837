/** A throwaway site CA with two host identities for the replication benchmarks (host-a primary, host-b replica). */
import { join } from 'node:path';
import { initCa } from '../../src/pki/ca.js';
import { issueHostCert } from '../../src/pki/csr.js';

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

/**
 * The site CA certificate the inventory carries. The management server makes its site CA in
 * `<dataDir>/site-ca/` at start (enrolment/site-ca.ts); this only reads `ca.crt`, and makes the CA
 * the same way (pki/ca.ts initCa) when a fabric-only setup (tests, a server that never enrolled a
 * host) has none yet.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isSecondsiteError } from '../../domain/errors.js';
import { caPaths, exists, initCa } from '../../pki/ca.js';

export async function readSiteCaCertPem(dataDir: string, managementServerName: string): Promise<string> {
  const caDir = join(dataDir, 'site-ca');
  const { keyPath, certPath } = caPaths(caDir);
  if (!(await exists(keyPath))) {
    try {
      await initCa(caDir, { name: `secondsite site CA of ${managementServerName}`.slice(0, 64) });
    } catch (e) {
      // another part of the server made it at the same moment: use theirs
      if (!isSecondsiteError(e) || e.code !== 'SECONDSITE_ERR_ALREADY_EXISTS') throw e;
    }
  }
  return readFile(certPath, 'utf8');
}

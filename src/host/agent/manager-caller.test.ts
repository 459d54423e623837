import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { initCa } from '../../pki/ca.js';
import { createKeyAndCsr, signCsr } from '../../pki/csr.js';
import {
  isManagerCertificate,
  loadManagerTrust,
  managerFilePath,
  requireManagerCaller,
  type ManagerFile,
} from './manager-caller.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function issue(
  caDir: string,
  commonName: string,
  usage: 'clientAuth' | 'serverAuth,clientAuth',
): Promise<X509Certificate> {
  const csrPem = await createKeyAndCsr(join(caDir, `${commonName}.key`), commonName);
  return new X509Certificate((await signCsr({ caDir, csrPem, commonName, usage })).certPem);
}

test('only manager.site from the site CA of manager.json is the manager', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ss-mgrcaller-'));
  dirs.push(dir);
  const site = join(dir, 'site-ca');
  const other = join(dir, 'other-ca');
  await initCa(site, { name: 'site' });
  await initCa(other, { name: 'other site' });
  const siteCaPem = await readFile(join(site, 'ca.crt'), 'utf8');

  assert.equal(await loadManagerTrust(dir), null, 'a host never enrolled has no manager');
  const file: ManagerFile = {
    format: 'secondsite-manager-1',
    hostId: 'host-a',
    managementServerName: 'vmm-east',
    managerUrl: 'https://127.0.0.1:8443',
    managerCommonName: 'manager.site',
    siteCaFingerprint256: new X509Certificate(siteCaPem).fingerprint256,
    siteCaCertPem: siteCaPem,
    enrolledAt: new Date().toISOString(),
  };
  await writeFile(managerFilePath(dir), JSON.stringify(file));
  const trust = await loadManagerTrust(dir);
  assert.ok(trust);

  assert.equal(isManagerCertificate(await issue(site, 'manager.site', 'clientAuth'), trust), true);
  assert.equal(
    isManagerCertificate(await issue(other, 'manager.site', 'clientAuth'), trust),
    false,
    "another site's CA issuing manager.site",
  );
  assert.equal(
    isManagerCertificate(await issue(site, 'host-b', 'serverAuth,clientAuth'), trust),
    false,
    'a host certificate of the same site CA',
  );
  assert.equal(isManagerCertificate(await issue(site, 'manager.site', 'clientAuth'), null), false);

  assert.doesNotThrow(() => requireManagerCaller('manager.site'));
  assert.throws(() => requireManagerCaller('host-b'), { code: 'SECONDSITE_ERR_UNAUTHORIZED' });
  assert.throws(() => requireManagerCaller(undefined), { code: 'SECONDSITE_ERR_UNAUTHORIZED' });

  // a manager.json whose CA does not match its fingerprint is refused, not trusted
  await writeFile(
    managerFilePath(dir),
    JSON.stringify({ ...file, siteCaCertPem: await readFile(join(other, 'ca.crt'), 'utf8') }),
  );
  await assert.rejects(loadManagerTrust(dir), { code: 'SECONDSITE_ERR_INVALID_ARGUMENT' });
});

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isSecondsiteError } from '../domain/errors.js';
import { caCommandGroup } from './ca.commands.js';
import { initCa } from './ca.js';
import { issueHostCert } from './csr.js';
import { hostIdOfCertificate, loadTlsIdentity, replicationServerOptions } from '../host/pki/tls-config.js';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'secondsite-ca-test-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('init creates a CA; issue signs a host certificate naming the host in CN and SAN', async () => {
  const caDir = join(dir, 'ca1');
  const ca = await initCa(caDir);
  assert.equal((await stat(ca.keyPath)).mode & 0o777, 0o600);
  const caCert = new X509Certificate(await readFile(ca.certPath));
  assert.ok(caCert.ca);
  const issued = await issueHostCert({ caDir, name: 'host-a', outDir: join(dir, 'tls') });
  const cert = new X509Certificate(await readFile(issued.certPath));
  assert.match(cert.subject, /CN=host-a/);
  assert.equal(cert.subjectAltName, 'DNS:host-a');
  assert.ok(cert.verify(caCert.publicKey), 'signed by the CA');
  assert.ok(!cert.ca);
  assert.equal((await stat(issued.keyPath)).mode & 0o777, 0o600);
  const id = await loadTlsIdentity(join(dir, 'tls'), 'host-a');
  const opts = replicationServerOptions(id);
  assert.equal(opts.minVersion, 'TLSv1.3');
  assert.equal(opts.requestCert, true);
  assert.equal(opts.rejectUnauthorized, true);
  assert.match(String(opts.ciphers), /^TLS_AES_128_GCM_SHA256/);
});

test('init refuses to overwrite a CA; issue refuses bad host ids and a missing CA', async () => {
  const caDir = join(dir, 'ca2');
  await initCa(caDir);
  await assert.rejects(initCa(caDir), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_ALREADY_EXISTS'));
  for (const name of ['../x', 'Host_A', '-a', 'a'.repeat(64), '']) {
    await assert.rejects(
      issueHostCert({ caDir, name, outDir: join(dir, 'bad') }),
      (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT'),
      name,
    );
  }
  await assert.rejects(
    issueHostCert({ caDir: join(dir, 'nope'), name: 'host-a', outDir: join(dir, 'bad') }),
    (e) => isSecondsiteError(e, 'SECONDSITE_ERR_NOT_FOUND'),
  );
});

test('hostIdOfCertificate needs the CN to be a DNS SAN', () => {
  const cert = (cn: string, san: string) => ({ subject: { CN: cn }, subjectaltname: san }) as never;
  assert.equal(hostIdOfCertificate(cert('host-a', 'DNS:host-a')), 'host-a');
  assert.equal(hostIdOfCertificate(cert('host-a', 'DNS:host-b')), null);
  assert.equal(hostIdOfCertificate(cert('host-a', '')), null);
});

test('the ca commands init and issue, with --json output', async () => {
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t) };
  const [init, issue] = caCommandGroup.commands;
  assert.ok(init && issue);
  const caDir = join(dir, 'ca3');
  assert.equal(await init.run([caDir, '--json'], io), 0);
  assert.equal((JSON.parse(out.pop() ?? '{}') as { certPath?: string }).certPath, join(caDir, 'ca.crt'));
  assert.equal(await issue.run(['--name', 'host-b', '--out', join(dir, 'tls3'), '--ca', caDir], io), 0);
  assert.match(out.pop() ?? '', /issued host-b/);
  assert.equal(await issue.run(['--name', 'host-b'], io), 2);
  assert.match(err.pop() ?? '', /usage/);
});

/**
 * Every state a crash can leave an install in (the install stopped after each of its file operations,
 * and states built by hand, such as a half-written staged certificate), and what reading the pair
 * then gives: the old pair before the commit point, the new one after it, never a mix.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { initCa } from './ca.js';
import { createKeyAndCsr, signCsr } from './csr.js';
import {
  createPendingKey,
  INSTALL_STEPS,
  installPending,
  keyCertPairPaths,
  readKeyCertPair,
  recoverKeyCertPair,
  type KeyCertPairPaths,
} from './key-cert-pair.js';

let root: string;
let caDir: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ss-keypair-'));
  caDir = join(root, 'ca');
  await initCa(caDir, { name: 'pair test CA' });
});
after(() => rm(root, { recursive: true, force: true }));

const sign = async (csrPem: string): Promise<string> =>
  (await signCsr({ caDir, csrPem, commonName: 'node-1', usage: 'clientAuth', days: 30 })).certPem;

/** A folder with an installed "old" pair and a pending key with its signed "new" certificate. */
async function staged(name: string): Promise<{
  paths: KeyCertPairPaths;
  old: { keyPem: string; certPem: string };
  next: { keyPem: string; certPem: string };
}> {
  const dir = join(root, name);
  await rm(dir, { recursive: true, force: true });
  await import('node:fs/promises').then((fs) => fs.mkdir(dir, { mode: 0o700 }));
  const paths = keyCertPairPaths(dir, 'node');
  const oldCert = await sign(await createKeyAndCsr(paths.keyPath, 'node-1'));
  await writeFile(paths.certPath, oldCert);
  const nextCert = await sign(await createPendingKey(paths, 'node-1'));
  return {
    paths,
    old: { keyPem: await readFile(paths.keyPath, 'utf8'), certPem: oldCert },
    next: { keyPem: await readFile(paths.pendingKeyPath, 'utf8'), certPem: nextCert },
  };
}

const files = async (p: KeyCertPairPaths): Promise<string[]> => (await readdir(p.dir)).sort();

class Crash extends Error {}

test('an install stopped after each of its steps: the old pair before the commit, the new one after', async () => {
  for (const [i, step] of INSTALL_STEPS.entries()) {
    const s = await staged(`stopped-after-${step}`);
    await assert.rejects(
      installPending(s.paths, s.next.certPem, (at) => {
        if (at === step) throw new Crash(step);
      }),
      Crash,
    );
    const committed = i >= INSTALL_STEPS.indexOf('committed');
    const want = committed ? s.next : s.old;
    assert.deepEqual(await readKeyCertPair(s.paths), want, `${step}: read before recovery`);
    await recoverKeyCertPair(s.paths);
    assert.deepEqual(await readKeyCertPair(s.paths), want, `${step}: after recovery`);
    assert.deepEqual(await files(s.paths), ['node.crt', 'node.key'], `${step}: nothing left over`);
  }
});

test('a crash before the commit point leaves the old pair, and recovery clears the leftovers', async () => {
  const cases: Array<[string, (s: Awaited<ReturnType<typeof staged>>) => Promise<void>]> = [
    ['pending key only', () => Promise.resolve()],
    ['cert staged, half written', (s) => writeFile(s.paths.stagedCertPath, s.next.certPem.slice(0, 100))],
    ['cert staged, whole', (s) => writeFile(s.paths.stagedCertPath, s.next.certPem)],
  ];
  for (const [name, crashAfter] of cases) {
    const s = await staged(`before-${name.replace(/\W+/g, '-')}`);
    await crashAfter(s);
    assert.deepEqual(await readKeyCertPair(s.paths), s.old, `${name}: read before recovery`);
    await recoverKeyCertPair(s.paths);
    assert.deepEqual(await readKeyCertPair(s.paths), s.old, name);
    assert.deepEqual(await files(s.paths), ['node.crt', 'node.key'], `${name}: leftovers cleared`);
  }
});

test('a crash after the commit point leaves the new pair (the install rolls forward)', async () => {
  const commit = async (s: Awaited<ReturnType<typeof staged>>): Promise<void> => {
    await writeFile(s.paths.stagedCertPath, s.next.certPem);
    await rename(s.paths.stagedCertPath, s.paths.committedCertPath);
  };
  const cases: Array<[string, (s: Awaited<ReturnType<typeof staged>>) => Promise<void>]> = [
    ['committed', commit],
    [
      'key renamed, certificate not',
      async (s) => {
        await commit(s);
        await rename(s.paths.pendingKeyPath, s.paths.keyPath);
      },
    ],
    [
      'both renamed',
      async (s) => {
        await commit(s);
        await rename(s.paths.pendingKeyPath, s.paths.keyPath);
        await rename(s.paths.committedCertPath, s.paths.certPath);
      },
    ],
  ];
  for (const [name, crashAfter] of cases) {
    const s = await staged(`after-${name.replace(/\W+/g, '-')}`);
    await crashAfter(s);
    assert.deepEqual(await readKeyCertPair(s.paths), s.next, `${name}: read before recovery`);
    await recoverKeyCertPair(s.paths);
    assert.deepEqual(await readKeyCertPair(s.paths), s.next, name);
    assert.deepEqual(await files(s.paths), ['node.crt', 'node.key'], name);
  }
});

test('a new request after a committed but unfinished install keeps that install', async () => {
  const s = await staged('request-after-commit');
  await writeFile(s.paths.committedCertPath, s.next.certPem);
  await createPendingKey(s.paths, 'node-1');
  const pair = await readKeyCertPair(s.paths);
  assert.deepEqual(pair, s.next);
});

test('installPending installs the matching certificate and refuses any other', async () => {
  const s = await staged('install');
  const stranger = join(s.paths.dir, 'stranger.key');
  const foreignCert = await sign(await createKeyAndCsr(stranger, 'node-1'));
  await rm(stranger);
  await assert.rejects(installPending(s.paths, foreignCert), /does not certify the key pending/);
  assert.deepEqual(await readKeyCertPair(s.paths), s.old, 'nothing installed');
  await recoverKeyCertPair(s.paths); // a restart clears the pending request
  await assert.rejects(installPending(s.paths, s.next.certPem), /no certificate request is pending/);
  const csr = await createPendingKey(s.paths, 'node-1');
  const cert = await sign(csr);
  const installed = await installPending(s.paths, cert);
  assert.equal(installed.certPem, cert);
  assert.deepEqual(await readKeyCertPair(s.paths), installed);
  assert.deepEqual(await files(s.paths), ['node.crt', 'node.key']);
});

test('reading leaves a pending request alone', async () => {
  const s = await staged('pending-read');
  assert.deepEqual(await readKeyCertPair(s.paths), s.old);
  assert.deepEqual(await files(s.paths), ['node.crt', 'node.key', 'node.key.next']);
});

test('a key and a certificate that do not belong together are refused with both files named', async () => {
  const s = await staged('mismatch');
  await copyFile(s.paths.pendingKeyPath, s.paths.keyPath);
  await rm(s.paths.pendingKeyPath);
  await assert.rejects(readKeyCertPair(s.paths), /node\.crt does not certify the key in .*node\.key/);
  await rm(s.paths.keyPath);
  await assert.rejects(readKeyCertPair(s.paths), /cannot read the key and certificate/);
});

test('readers during installs always get a whole pair, old or new', async () => {
  const s = await staged('readers');
  let installing = true;
  const seen = new Set<string>();
  const reader = (async (): Promise<number> => {
    let reads = 0;
    while (installing) {
      const pair = await readKeyCertPair(s.paths); // throws on a mixed or missing pair
      seen.add(pair.certPem);
      reads++;
    }
    return reads;
  })();
  const installed = [s.old.certPem];
  for (let i = 0; i < 8; i++) {
    const cert = await sign(await createPendingKey(s.paths, 'node-1'));
    await installPending(s.paths, cert);
    installed.push(cert);
  }
  installing = false;
  const reads = await reader;
  assert.ok(reads > 8, `${reads} reads`);
  for (const cert of seen) assert.ok(installed.includes(cert), 'a certificate that was installed');
});

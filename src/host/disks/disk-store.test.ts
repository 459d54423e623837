import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Clock } from '../../domain/clock.js';
import { isSecondsiteError, type ErrorCode } from '../../domain/errors.js';
import { GiB, MiB } from '../../domain/units.js';
import { NodeStorage } from '../storage/node-storage.js';
import { DiskStore } from './disk-store.js';

let root: string;
const clock: Clock = { wallMs: () => 1_700_000_000_000, monotonicMs: () => 0 };
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'secondsite-disk-store-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const is = (code: ErrorCode) => (e: unknown) => isSecondsiteError(e, code);

test('create is sparse and idempotent; different settings are refused', async () => {
  const store = await DiskStore.open(new NodeStorage({ confineTo: root }), root, clock);
  const info = await store.create('vm1-disk0', { name: 'system', sizeBytes: 10 * GiB });
  assert.deepEqual(info, {
    diskId: 'vm1-disk0',
    name: 'system',
    sizeBytes: 10 * GiB,
    createdWallMs: 1_700_000_000_000,
  });
  const st = await stat(join(root, 'disks', 'vm1-disk0.raw'));
  assert.equal(st.size, 10 * GiB);
  assert.equal(st.blocks, 0, 'a new disk allocates nothing');
  assert.deepEqual(await store.create('vm1-disk0', { name: 'system', sizeBytes: 10 * GiB }), info);
  await assert.rejects(
    store.create('vm1-disk0', { name: 'system', sizeBytes: 20 * GiB }),
    is('SECONDSITE_ERR_ALREADY_EXISTS'),
  );
  await assert.rejects(
    store.create('vm1-disk1', { name: 'x', sizeBytes: 1000 }),
    is('SECONDSITE_ERR_INVALID_ARGUMENT'),
  );
  await assert.rejects(
    store.create('vm1-disk1', { name: 'x', sizeBytes: 0 }),
    is('SECONDSITE_ERR_INVALID_ARGUMENT'),
  );
  await assert.rejects(
    store.create('vm1-disk1', { name: 'a\nb', sizeBytes: MiB }),
    is('SECONDSITE_ERR_INVALID_ARGUMENT'),
  );
  await store.create('vm1-disk1', { name: 'data', sizeBytes: MiB });
  assert.deepEqual(
    (await store.list()).map((d) => d.diskId),
    ['vm1-disk0', 'vm1-disk1'],
  );
  assert.deepEqual(await store.get('vm1-disk1'), {
    diskId: 'vm1-disk1',
    name: 'data',
    sizeBytes: MiB,
    createdWallMs: 1_700_000_000_000,
  });
  await assert.rejects(store.get('nope'), is('SECONDSITE_ERR_NOT_FOUND'));
});

test('path attacks are refused and create nothing outside the root', async () => {
  const store = await DiskStore.open(new NodeStorage(), root, clock);
  for (const bad of [
    '..',
    '../x',
    '../../etc/passwd',
    '/etc/passwd',
    'a/b',
    'a\0b',
    '',
    '.hidden',
    'a.b',
    'ａｂ',
    'x'.repeat(129),
  ]) {
    await assert.rejects(
      store.create(bad, { name: 'n', sizeBytes: MiB }),
      is('SECONDSITE_ERR_UNSAFE_PATH'),
      bad,
    );
    await assert.rejects(store.openDevice(bad), is('SECONDSITE_ERR_UNSAFE_PATH'), bad);
    await assert.rejects(store.delete(bad), is('SECONDSITE_ERR_UNSAFE_PATH'), bad);
  }
  assert.deepEqual((await readdir(root)).sort(), ['disks']);
});

test('resize grows; shrink needs force; a disk open read-write is busy', async () => {
  const store = await DiskStore.open(new NodeStorage(), root, clock);
  await store.create('grow', { name: 'g', sizeBytes: 4 * MiB });
  const dev = await store.openDevice('grow');
  await dev.write(3 * MiB, Buffer.alloc(MiB, 9), { fua: true });
  await assert.rejects(store.resize('grow', 8 * MiB), is('SECONDSITE_ERR_DISK_BUSY'));
  await assert.rejects(store.delete('grow'), is('SECONDSITE_ERR_DISK_BUSY'));
  await assert.rejects(store.openDevice('grow'), is('SECONDSITE_ERR_DISK_BUSY'));
  const reader = await store.openDevice('grow', { readOnly: true });
  assert.equal((await reader.read(3 * MiB, 1))[0], 9);
  await reader.close();
  await dev.close();
  await dev.close();
  assert.equal((await store.resize('grow', 8 * MiB)).sizeBytes, 8 * MiB);
  assert.equal((await stat(join(root, 'disks', 'grow.raw'))).size, 8 * MiB);
  await assert.rejects(
    store.resize('grow', 2 * MiB),
    (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT') && /force/.test(e.message),
  );
  assert.equal((await store.get('grow')).sizeBytes, 8 * MiB);
  assert.equal((await store.resize('grow', 2 * MiB, { force: true })).sizeBytes, 2 * MiB);
  const small = await store.openDevice('grow');
  assert.equal(small.sizeBytes, 2 * MiB);
  await small.close();
});

test('an interrupted resize is settled on open: the metadata size wins', async () => {
  const store = await DiskStore.open(new NodeStorage(), root, clock);
  await store.create('crashy', { name: 'c', sizeBytes: 4 * MiB });
  // As if a grow crashed after extending the image but before the metadata was replaced.
  await truncate(join(root, 'disks', 'crashy.raw'), 64 * MiB);
  const dev = await store.openDevice('crashy');
  assert.equal(dev.sizeBytes, 4 * MiB);
  await dev.close();
  assert.equal((await stat(join(root, 'disks', 'crashy.raw'))).size, 4 * MiB);
});

test('delete removes every file of the disk and is idempotent; corrupt metadata is reported', async () => {
  const store = await DiskStore.open(new NodeStorage(), root, clock);
  await store.create('gone', { name: 'g', sizeBytes: MiB });
  await writeFile(join(root, 'disks', 'gone.ctrack'), 'state');
  await writeFile(join(root, 'disks', 'gone.cow'), 'cow');
  assert.equal(await store.delete('gone'), true);
  assert.equal(await store.delete('gone'), false);
  assert.deepEqual(
    (await readdir(join(root, 'disks'))).filter((n) => n.startsWith('gone')),
    [],
  );
  await store.create('bad', { name: 'b', sizeBytes: MiB });
  const metaPath = join(root, 'disks', 'bad.meta.json');
  await writeFile(metaPath, (await readFile(metaPath, 'utf8')).replace('"b"', '"c"'));
  await assert.rejects(store.get('bad'), is('SECONDSITE_ERR_METADATA_CORRUPT'));
  await store.delete('bad');
});

/**
 * Copy-on-write test views on real files: writes to a view never change its point, the base or the
 * undo files, replication keeps committing underneath, flushed writes survive a restart, and discard
 * leaves no file behind.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isSecondsiteError } from '../../src/domain/errors.js';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { PointStore } from '../../src/host/recovery-points/point-store.js';
import type { BlockDevice } from '../../src/host/block-device/block-device.js';
import { NodeStorage } from '../../src/host/storage/node-storage.js';
import { DiskModel, fixedClock, randomCycle, stage, verifyPoints } from './store-harness.js';

const SEED = seedFrom(process.env['SECONDSITE_SEED'], 4242);
const T0 = Date.UTC(2026, 10, 1);
const SIZE = 128 * 1024 + 1024;
let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'secondsite-views-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

function openStore(dir: string): Promise<PointStore> {
  return PointStore.open({
    storage: new NodeStorage(),
    storageDir: dir,
    relationshipId: 'rel',
    clock: fixedClock,
  });
}

async function commitCycle(store: PointStore, model: DiskModel, rng: Rng, n: number): Promise<string> {
  const w = await store.beginCycle(`c${n}`, 0);
  await stage(w, randomCycle(rng, model, 8), rng);
  const info = await w.commit({ cutWallMs: T0 + n * 60_000, consistency: 'crash-consistent' });
  model.snapshot(info.pointId);
  return info.pointId;
}

async function randomViewWrites(dev: BlockDevice, expected: Buffer, rng: Rng, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const off = rng.int(expected.length);
    const len = 1 + rng.int(Math.min(20_000, expected.length - off));
    const r = rng.int(10);
    if (r < 7) {
      const data = rng.fill(Buffer.alloc(len)) as Buffer;
      await dev.write(off, data, { fua: false });
      data.copy(expected, off);
    } else {
      await dev.writeZeroes(off, len, { fua: false, noHole: r === 9 });
      expected.fill(0, off, off + len);
    }
  }
}

async function assertDevice(dev: BlockDevice, expected: Buffer, rng: Rng, label: string): Promise<void> {
  assert.ok((await dev.read(0, expected.length)).equals(expected), `${label}: whole read`);
  for (let i = 0; i < 5; i++) {
    const off = rng.int(expected.length);
    const len = rng.int(expected.length - off + 1);
    assert.ok((await dev.read(off, len)).equals(expected.subarray(off, off + len)), `${label}: range read`);
    for (const e of await dev.extents(off, len)) {
      if (e.zero) {
        const part = expected.subarray(e.offsetBytes, e.offsetBytes + e.lengthBytes);
        assert.ok(
          part.every((b) => b === 0),
          `${label}: extent reported zero has data`,
        );
      }
    }
  }
}

test('a CoW test view: writes stay in the overlay; replication continues; flushed writes persist; discard leaves nothing', async () => {
  const rng = new Rng(SEED);
  const label = `seed=${SEED}`;
  const dir = await mkdtemp(join(root, 'view-'));
  let store = await openStore(dir);
  await store.ensureDisk('d', SIZE);
  const model = new DiskModel();
  model.resize('d', SIZE);
  for (let n = 1; n <= 4; n++) await commitCycle(store, model, rng, n);
  const undoBefore = new Map<string, Buffer>();
  for (const name of await readdir(join(dir, 'rel', 'undo'))) {
    undoBefore.set(name, await readFile(join(dir, 'rel', 'undo', name)));
  }

  const view = await store.openTestView('rp-2', 'drill-1');
  const dev = await view.disk('d');
  assert.equal(dev.sizeBytes, SIZE);
  const expected = Buffer.from(model.snapshots.get('rp-2')?.get('d') as Buffer);
  await randomViewWrites(dev, expected, rng, 40);
  await assertDevice(dev, expected, rng, label);

  // The point, the base (latest point) and the undo files are untouched.
  await verifyPoints(store, model, `${label} while the view is written`);
  assert.ok(
    (await readFile(join(dir, 'rel', 'disks', 'd.base'))).equals(
      model.snapshots.get('rp-4')?.get('d') as Buffer,
    ),
  );
  for (const [name, bytes] of undoBefore) {
    assert.ok(
      (await readFile(join(dir, 'rel', 'undo', name))).equals(bytes),
      `${label}: undo ${name} changed`,
    );
  }

  // Replication keeps committing underneath; retention keeps the pinned point.
  for (let n = 5; n <= 7; n++) await commitCycle(store, model, rng, n);
  await store.applyRetention(T0 + 1000 * 60_000, 0);
  assert.deepEqual(
    store.points().map((p) => p.pointId),
    ['rp-2', 'rp-7'],
  );
  await assertDevice(dev, expected, rng, `${label} after more cycles and retention`);
  await verifyPoints(store, model, `${label} after more cycles and retention`);

  // Flushed writes survive a restart of the agent; the view is reopened by its id.
  await dev.flush();
  await view.close();
  await store.close();
  store = await openStore(dir);
  assert.deepEqual([...store.testViews()], [['drill-1', 'rp-2']]);
  assert.deepEqual(
    await store.applyRetention(T0 + 1000 * 60_000, 0),
    [],
    'a persisted view still pins its point',
  );
  await assert.rejects(store.openTestView('rp-7', 'drill-1'), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_ALREADY_EXISTS'),
  );
  const reopened = await store.openTestView('rp-2', 'drill-1');
  const dev2 = await reopened.disk('d');
  await assertDevice(dev2, expected, rng, `${label} after restart`);
  await dev2.write(100, Buffer.alloc(10, 0xab), { fua: true });
  Buffer.alloc(10, 0xab).copy(expected, 100);
  await assertDevice(dev2, expected, rng, `${label} after a FUA write`);

  // Discard: no file of the view is left, and the point is released.
  await reopened.discard();
  assert.deepEqual(await readdir(join(dir, 'rel', 'views')), []);
  assert.equal(store.testViews().size, 0);
  assert.deepEqual(await store.applyRetention(T0 + 1000 * 60_000, 0), ['rp-2']);
  await verifyPoints(store, model, `${label} after discard`);
  await assert.rejects(store.openTestView('rp-99', 'x'), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_RECOVERY_POINT_NOT_FOUND'),
  );
  assert.deepEqual(await readdir(join(dir, 'rel', 'views')), []);
  await store.close();
});

test('a view of the latest point reads the base directly and survives the next commit', async () => {
  const rng = new Rng(SEED + 1);
  const dir = await mkdtemp(join(root, 'latest-'));
  const store = await openStore(dir);
  await store.ensureDisk('d', SIZE);
  const model = new DiskModel();
  model.resize('d', SIZE);
  const p1 = await commitCycle(store, model, rng, 1);
  const reader = await store.openPointDisk(p1, 'd');
  const before = await reader.read(0, SIZE);
  await commitCycle(store, model, rng, 2);
  assert.ok(
    (await reader.read(0, SIZE)).equals(before),
    `seed=${SEED + 1}: the point changed under its view`,
  );
  assert.ok(before.equals(model.snapshots.get(p1)?.get('d') as Buffer));
  await reader.close();
  await assert.rejects(reader.read(0, 1), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'));
  await store.close();
});

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
import { PowerCutStorage } from '../../src/testing/faults/power-cut-storage.js';
import { StopAtStorage } from '../../src/testing/faults/stop-at-storage.js';
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
  await store.applyRetention(0);
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
  assert.deepEqual(await store.applyRetention(0), [], 'a persisted view still pins its point');
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
  assert.deepEqual(await store.applyRetention(0), ['rp-2']);
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

test('a power cut after a view flush keeps every flushed write; unflushed ones are old or new per sector', async () => {
  for (let round = 0; round < 6; round++) {
    const seed = SEED + 10 + round;
    const rng = new Rng(seed);
    const disk = new PowerCutStorage({ seed });
    await disk.mkdir('/replica');
    await disk.syncDir('/');
    const open = (): Promise<PointStore> =>
      PointStore.open({ storage: disk, storageDir: '/replica', relationshipId: 'rel', clock: fixedClock });
    const store = await open();
    await store.ensureDisk('d', SIZE);
    const model = new DiskModel();
    model.resize('d', SIZE);
    for (let n = 1; n <= 3; n++) await commitCycle(store, model, rng, n);
    const view = await store.openTestView('rp-2', 'v');
    const dev = await view.disk('d');
    const expected = Buffer.from(model.snapshots.get('rp-2')?.get('d') as Buffer);
    await randomViewWrites(dev, expected, rng, 20);
    await dev.flush();
    const atFlush = Buffer.from(expected);
    if (round % 2 === 1) {
      // Unflushed writes to distinct blocks (so each sector has one older and one newer content).
      const blocks = new Set<number>();
      while (blocks.size < 10) blocks.add(rng.int(Math.ceil(SIZE / 4096)));
      for (const b of blocks) {
        const data = rng.fill(Buffer.alloc(Math.min(4096, SIZE - b * 4096))) as Buffer;
        await dev.write(b * 4096, data, { fua: false });
        data.copy(expected, b * 4096);
      }
    }
    disk.powerCut({ mode: round % 3 === 0 ? 'prefix' : 'random-subset', tear: true });

    const store2 = await open();
    const dev2 = await (await store2.openTestView('rp-2', 'v')).disk('d');
    const got = await dev2.read(0, SIZE);
    for (let at = 0; at < SIZE; at += 512) {
      const end = Math.min(at + 512, SIZE);
      const g = got.subarray(at, end);
      assert.ok(
        g.equals(atFlush.subarray(at, end)) || g.equals(expected.subarray(at, end)),
        `seed=${seed}: sector at ${at} is neither the flushed nor the later content`,
      );
      if (round % 2 === 0)
        assert.ok(g.equals(atFlush.subarray(at, end)), `seed=${seed}: flushed sector at ${at} lost`);
    }
    await verifyPoints(store2, model, `seed=${seed}: the point under the view`);
    await store2.close();
  }
});

test('a power cut at every step of a view flush: each sector holds the previous flush or the new writes', async () => {
  const seed = SEED + 30;
  // Sizing run: how many mutating calls one flush makes.
  let flushMutations = 0;
  for (let crashAt = -1; crashAt <= flushMutations; crashAt++) {
    const rng = new Rng(seed);
    const disk = new PowerCutStorage({ seed });
    await disk.mkdir('/replica');
    await disk.syncDir('/');
    const storage = new StopAtStorage(disk);
    const open = (s: StopAtStorage): Promise<PointStore> =>
      PointStore.open({ storage: s, storageDir: '/replica', relationshipId: 'rel', clock: fixedClock });
    const store = await open(storage);
    await store.ensureDisk('d', SIZE);
    const model = new DiskModel();
    model.resize('d', SIZE);
    // rp-1: every byte random, so content that came from the wrong place cannot pass as zeros.
    const fill = await store.beginCycle('fill', 0);
    const full = rng.fill(Buffer.alloc(SIZE)) as Buffer;
    await fill.writeChunk('d', 0, full);
    model.apply({ kind: 'data', diskId: 'd', offsetBytes: 0, data: full });
    model.snapshot((await fill.commit({ cutWallMs: T0, consistency: 'crash-consistent' })).pointId);
    await commitCycle(store, model, rng, 2);
    const dev = await (await store.openTestView('rp-1', 'v')).disk('d');
    const expected = Buffer.from(model.snapshots.get('rp-1')?.get('d') as Buffer);
    await randomViewWrites(dev, expected, rng, 15);
    await dev.flush();
    const previous = Buffer.from(expected);
    const blocks = new Set<number>();
    while (blocks.size < 12) blocks.add(rng.int(Math.ceil(SIZE / 4096)));
    for (const b of blocks) {
      const data = rng.fill(Buffer.alloc(Math.min(4096, SIZE - b * 4096))) as Buffer;
      await dev.write(b * 4096, data, { fua: false });
      data.copy(expected, b * 4096);
    }
    const start = storage.mutations;
    if (crashAt >= 0) storage.armStop(crashAt);
    const flushed = await dev.flush().then(
      () => true,
      () => false,
    );
    if (crashAt < 0) {
      flushMutations = storage.mutations - start;
      continue;
    }
    disk.powerCut({ mode: crashAt % 2 === 0 ? 'none' : 'random-subset', tear: true });
    const store2 = await open(new StopAtStorage(disk));
    const got = await (await (await store2.openTestView('rp-1', 'v')).disk('d')).read(0, SIZE);
    for (let at = 0; at < SIZE; at += 512) {
      const end = Math.min(at + 512, SIZE);
      const g = got.subarray(at, end);
      const label = `seed=${seed} crashAt=${crashAt}/${flushMutations}: sector ${at}`;
      if (flushed) assert.ok(g.equals(expected.subarray(at, end)), `${label} lost after a completed flush`);
      else assert.ok(g.equals(previous.subarray(at, end)) || g.equals(expected.subarray(at, end)), label);
    }
    await verifyPoints(store2, model, `seed=${seed} crashAt=${crashAt}`);
    await store2.close();
  }
  assert.ok(flushMutations >= 4, `a flush made only ${flushMutations} mutating calls`);
});

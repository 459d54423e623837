/**
 * Adoption of an earlier cycle's staging (docs/design/recovery-points.md section 4): a new cycle of
 * the same epoch whose plan covers every staged range keeps those records as "adopted" (reported by
 * `adopted()`, not `progress()`), `overlayStaged` shows the content a commit would produce, and a
 * commit applies adopted records under the new ones. Anything else (another epoch, a range outside the
 * plan, no plan given) discards the staging. Seeded: SECONDSITE_SEED.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { PointStore } from '../../src/host/recovery-points/point-store.js';
import { NodeStorage } from '../../src/host/storage/node-storage.js';
import { DiskModel, fixedClock, verifyPoints } from './store-harness.js';

const SEED = seedFrom(process.env['SECONDSITE_SEED'], 20261122);
const KiB = 1024;
const DISK_BYTES = 256 * KiB;
const WHOLE = { d: [{ offsetBytes: 0, lengthBytes: DISK_BYTES }] };
let root: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'secondsite-adopt-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function openStore(dir: string): Promise<PointStore> {
  const store = await PointStore.open({
    storage: new NodeStorage(),
    storageDir: dir,
    relationshipId: 'rel',
    clock: fixedClock,
  });
  await store.ensureDisk('d', DISK_BYTES);
  return store;
}

test('a new cycle adopts the staged records of an earlier one, through reopen and a chain of cycles', async () => {
  const rng = new Rng(SEED + 300);
  const dir = await mkdtemp(join(root, 'chain-'));
  let store = await openStore(dir);
  const a = rng.fill(Buffer.alloc(64 * KiB)) as Buffer;
  const c1 = await store.beginCycle('c1', 0);
  await c1.writeChunk('d', 0, a);
  await c1.zeroRange('d', 64 * KiB, 16 * KiB);
  await c1.sync();
  await c1.writeChunk('d', 128 * KiB, a); // not synced, but a restart without a power cut keeps it
  // the sender restarts: a new cycle over the whole disk adopts c1's records
  await store.close();
  store = await openStore(dir);
  const c2 = await store.beginCycle('c2', 0, { adoptWithin: WHOLE });
  assert.deepEqual(c2.progress().staged, {}, `own progress starts empty (seed ${SEED})`);
  assert.deepEqual(c2.adopted()['d'], [
    { offsetBytes: 0, lengthBytes: 80 * KiB },
    { offsetBytes: 128 * KiB, lengthBytes: 64 * KiB },
  ]);
  // what a commit would produce, seen through overlayStaged on top of the (empty) base
  const view = Buffer.alloc(96 * KiB, 0xee);
  await c2.overlayStaged('d', 0, view);
  assert.ok(view.subarray(0, 64 * KiB).equals(a));
  assert.ok(view.subarray(64 * KiB, 80 * KiB).every((b) => b === 0));
  assert.ok(
    view.subarray(80 * KiB).every((b) => b === 0xee),
    'unstaged bytes are left as they were',
  );

  // c2 stages more, then is itself adopted by c3 after a reopen (the chain keeps every record)
  const b = rng.fill(Buffer.alloc(32 * KiB)) as Buffer;
  await c2.writeChunk('d', 32 * KiB, b);
  await c2.sync();
  await store.close();
  store = await openStore(dir);
  const c2again = await store.beginCycle('c2', 0);
  assert.deepEqual(c2again.progress().staged['d'], [{ offsetBytes: 32 * KiB, lengthBytes: 32 * KiB }]);
  assert.equal(c2again.adopted()['d']?.[0]?.offsetBytes, 0, 'reopening keeps adopted records adopted');
  const c3 = await store.beginCycle('c3', 0, { adoptWithin: WHOLE });
  assert.deepEqual(c3.progress().staged, {});
  const tail = rng.fill(Buffer.alloc(4 * KiB)) as Buffer;
  await c3.writeChunk('d', 60 * KiB, tail);
  const p = await c3.commit({ cutWallMs: 1, consistency: 'crash-consistent' });

  const model = new DiskModel();
  model.resize('d', DISK_BYTES);
  model.apply({ kind: 'data', diskId: 'd', offsetBytes: 0, data: a });
  model.apply({ kind: 'zero', diskId: 'd', offsetBytes: 64 * KiB, lengthBytes: 16 * KiB });
  model.apply({ kind: 'data', diskId: 'd', offsetBytes: 128 * KiB, data: a });
  model.apply({ kind: 'data', diskId: 'd', offsetBytes: 32 * KiB, data: b });
  model.apply({ kind: 'data', diskId: 'd', offsetBytes: 60 * KiB, data: tail });
  model.snapshot(p.pointId);
  await verifyPoints(store, model, `seed=${SEED}`);
  await store.close();
});

test('overlayStaged on top of the latest point is exactly what the commit produces', async () => {
  const rng = new Rng(SEED + 301);
  const dir = await mkdtemp(join(root, 'overlay-'));
  const store = await openStore(dir);
  const base = rng.fill(Buffer.alloc(DISK_BYTES)) as Buffer;
  const c0 = await store.beginCycle('c0', 0);
  await c0.writeChunk('d', 0, base);
  await c0.commit({ cutWallMs: 1, consistency: 'crash-consistent' });
  const expected = Buffer.from(base);
  const c1 = await store.beginCycle('c1', 0);
  for (let i = 0; i < 40; i++) {
    const off = rng.int(DISK_BYTES - 1);
    const len = 1 + rng.int(Math.min(20 * KiB, DISK_BYTES - off));
    if (rng.chance(0.2)) {
      await c1.zeroRange('d', off, len);
      expected.fill(0, off, off + len);
    } else {
      const data = rng.fill(Buffer.alloc(len)) as Buffer;
      await c1.writeChunk('d', off, data);
      data.copy(expected, off);
    }
  }
  await c1.sync();
  const c2 = await store.beginCycle('c2', 0, { adoptWithin: WHOLE });
  const last = store.points().at(-1);
  assert.ok(last);
  const reader = await store.openPointDisk(last.pointId, 'd');
  for (let i = 0; i < 20; i++) {
    const off = rng.int(DISK_BYTES - 1);
    const len = 1 + rng.int(DISK_BYTES - off);
    const got = await reader.read(off, len);
    await c2.overlayStaged('d', off, got);
    assert.ok(got.equals(expected.subarray(off, off + len)), `overlay ${off}+${len} (seed ${SEED})`);
  }
  await reader.close();
  const p = await c2.commit({ cutWallMs: 2, consistency: 'crash-consistent' });
  const after = await store.openPointDisk(p.pointId, 'd');
  assert.ok((await after.read(0, DISK_BYTES)).equals(expected), `commit (seed ${SEED})`);
  await after.close();
  await store.close();
});

test('staging is discarded, not adopted, for another epoch, a range outside the plan, or no plan', async () => {
  const rng = new Rng(SEED + 302);
  const dir = await mkdtemp(join(root, 'refuse-'));
  const store = await openStore(dir);
  const data = rng.fill(Buffer.alloc(8 * KiB)) as Buffer;
  const stageAt = async (cycleId: string, epoch: number, offsetBytes: number): Promise<void> => {
    const w = await store.beginCycle(cycleId, epoch);
    await w.writeChunk('d', offsetBytes, data);
    await w.sync();
  };
  await stageAt('a', 0, 100 * KiB);
  const outside = await store.beginCycle('b', 0, {
    adoptWithin: { d: [{ offsetBytes: 0, lengthBytes: 104 * KiB }] },
  });
  assert.deepEqual(outside.adopted(), {}, 'a record reaching past the plan discards the staging');

  await stageAt('c', 0, 0);
  const noPlan = await store.beginCycle('d', 0);
  assert.deepEqual(noPlan.adopted(), {});

  await stageAt('e', 0, 0);
  await store.setEpoch(1);
  const newEpoch = await store.beginCycle('f', 1, { adoptWithin: WHOLE });
  assert.deepEqual(newEpoch.adopted(), {}, 'a failover (new epoch) never adopts the old staging');

  await stageAt('g', 1, 0);
  const otherDisk = await store.beginCycle('h', 1, {
    adoptWithin: { other: [{ offsetBytes: 0, lengthBytes: DISK_BYTES }] },
  });
  assert.deepEqual(otherDisk.adopted(), {});
  const p = await otherDisk.commit({ cutWallMs: 1, consistency: 'crash-consistent' });
  const view = await store.openPointDisk(p.pointId, 'd');
  assert.ok(
    (await view.read(0, DISK_BYTES)).every((b) => b === 0),
    'nothing discarded reached the point',
  );
  await view.close();
  await store.close();
});

/** NodeStorage counting the bytes read from staging logs (a scan reads and hashes the whole log). */
class RedoReadCounter extends NodeStorage {
  bytesRead = 0;

  override async open(path: string, mode: 'read' | 'readwrite' | 'create'): ReturnType<NodeStorage['open']> {
    const file = await super.open(path, mode);
    if (!path.endsWith('/redo.log')) return file;
    const read = file.read.bind(file);
    return Object.assign(file, {
      read: async (buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number) => {
        const n = await read(buf, bufOffset, lengthBytes, positionBytes);
        this.bytesRead += n;
        return n;
      },
    });
  }
}

test('a staging of the same process is resumed or adopted from memory: the log is not read again; unsynced records are cut', async () => {
  const rng = new Rng(SEED + 700);
  const dir = await mkdtemp(join(root, 'in-memory-'));
  const storage = new RedoReadCounter();
  const open = async (): Promise<PointStore> => {
    const s = await PointStore.open({ storage, storageDir: dir, relationshipId: 'rel', clock: fixedClock });
    await s.ensureDisk('d', DISK_BYTES);
    return s;
  };
  let store = await open();
  const model = new DiskModel();
  model.resize('d', DISK_BYTES);
  // a point first, so that cycles stage into a log (a first cycle is staged in place)
  const seedCycle = await store.beginCycle('c0', 0);
  const base = rng.fill(Buffer.alloc(32 * KiB)) as Buffer;
  await seedCycle.writeChunk('d', 0, base);
  model.disks.get('d')?.set(base, 0);
  model.snapshot((await seedCycle.commit({ cutWallMs: 1, consistency: 'crash-consistent' })).pointId);

  const a = rng.fill(Buffer.alloc(16 * KiB)) as Buffer;
  const b = rng.fill(Buffer.alloc(16 * KiB)) as Buffer;
  const c1 = await store.beginCycle('c1', 0);
  await c1.writeChunk('d', 0, a);
  await c1.sync();
  await c1.writeChunk('d', 64 * KiB, b); // written, never synced: not part of the durable prefix
  // the connection was cut: the same cycle begins again in this process
  storage.bytesRead = 0;
  const resumed = await store.beginCycle('c1', 0);
  assert.equal(storage.bytesRead, 0, 'the resume read the staging log');
  assert.deepEqual(resumed.progress().staged['d'], [{ offsetBytes: 0, lengthBytes: 16 * KiB }]);
  await resumed.writeChunk('d', 128 * KiB, b);
  await resumed.sync();
  // the sender restarted with a new cycle over the whole disk: it adopts c1's records, from memory
  const c2 = await store.beginCycle('c2', 0, { adoptWithin: WHOLE });
  assert.equal(storage.bytesRead, 0, 'the adoption read the staging log');
  assert.deepEqual(c2.adopted()['d'], [
    { offsetBytes: 0, lengthBytes: 16 * KiB },
    { offsetBytes: 128 * KiB, lengthBytes: 16 * KiB },
  ]);
  await c2.writeChunk('d', 64 * KiB, a);
  await c2.sync();
  // a restart in between: the next cycle finds the log by a scan, and it agrees with memory
  await store.close();
  store = await open();
  storage.bytesRead = 0;
  const c2again = await store.beginCycle('c2', 0, { adoptWithin: WHOLE });
  assert.ok(storage.bytesRead > 0, 'after a restart the log is scanned');
  assert.deepEqual(c2again.progress().staged['d'], [{ offsetBytes: 64 * KiB, lengthBytes: 16 * KiB }]);
  const d = model.disks.get('d') as Buffer;
  a.copy(d, 0);
  b.copy(d, 128 * KiB);
  a.copy(d, 64 * KiB);
  model.snapshot((await c2again.commit({ cutWallMs: 2, consistency: 'crash-consistent' })).pointId);
  await verifyPoints(store, model, `seed=${SEED + 700}`);
  await store.close();
});

/**
 * A store's first cycle is staged in place (docs/design/recovery-points.md section 4.1): its bytes go
 * straight into the bases and the redo log holds metadata only. These cases check what the random
 * power-cut cases of commit-crash.test.ts reach only by chance: bytes a killed receiver left in a base
 * without a record never reach the first point (IP3), and after a failed base sync the staging is
 * started over instead of trusting the page cache. Seeded: SECONDSITE_SEED.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSecondsiteError } from '../../src/domain/errors.js';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { PointStore } from '../../src/host/recovery-points/point-store.js';
import { PowerCutStorage } from '../../src/testing/faults/power-cut-storage.js';
import { DiskModel, fixedClock, verifyPoints } from './store-harness.js';

const SEED = seedFrom(process.env['SECONDSITE_SEED'], 4_100_001);
const DIR = '/replica';
const KiB = 1024;
const DISK_BYTES = 256 * KiB;
const REDO = `${DIR}/rel/staging/redo.log`;

async function fresh(seed: number): Promise<{ disk: PowerCutStorage; store: PointStore; rng: Rng }> {
  const disk = new PowerCutStorage({ seed });
  await disk.mkdir(DIR);
  await disk.syncDir('/');
  const store = await open(disk);
  await store.ensureDisk('d', DISK_BYTES);
  return { disk, store, rng: new Rng(seed) };
}

function open(disk: PowerCutStorage): Promise<PointStore> {
  return PointStore.open({ storage: disk, storageDir: DIR, relationshipId: 'rel', clock: fixedClock });
}

async function redoBytes(disk: PowerCutStorage): Promise<number> {
  const f = await disk.open(REDO, 'read');
  try {
    return await f.sizeBytes();
  } finally {
    await f.close();
  }
}

test('the first cycle is staged in place (the log holds no chunk bytes); later cycles go through the log', async () => {
  const { disk, store, rng } = await fresh(SEED);
  const model = new DiskModel();
  model.resize('d', DISK_BYTES);
  for (const [i, cycleId] of ['c1', 'c2'].entries()) {
    const w = await store.beginCycle(cycleId, 0);
    let staged = 0;
    for (let off = i * 32 * KiB; off < DISK_BYTES; off += 64 * KiB) {
      const data = rng.fill(Buffer.alloc(16 * KiB)) as Buffer;
      await w.writeChunk('d', off, data);
      model.apply({ kind: 'data', diskId: 'd', offsetBytes: off, data });
      staged += data.length;
    }
    await w.zeroRange('d', 16 * KiB, 8 * KiB);
    model.apply({ kind: 'zero', diskId: 'd', offsetBytes: 16 * KiB, lengthBytes: 8 * KiB });
    await w.sync();
    const logBytes = await redoBytes(disk);
    if (i === 0)
      assert.ok(logBytes < 2 * KiB, `seed=${SEED}: first cycle log ${logBytes} B holds only metadata`);
    else assert.ok(logBytes > staged, `seed=${SEED}: a later cycle stages its ${staged} B in the log`);
    model.snapshot((await w.commit({ cutWallMs: i, consistency: 'crash-consistent' })).pointId);
    await verifyPoints(store, model, `seed=${SEED} after ${cycleId}`, rng);
  }
  await store.close();
});

test('bytes a killed receiver left in a base without a record never reach the first point (IP3)', async () => {
  const { disk, store, rng } = await fresh(SEED + 1);
  const a = rng.fill(Buffer.alloc(16 * KiB)) as Buffer;
  const c1 = await store.beginCycle('c1', 0);
  await c1.writeChunk('d', 0, a);
  await c1.sync();
  // written into the base, never synced: the receiver is killed (the store is abandoned, not closed)
  await c1.writeChunk('d', 128 * KiB, rng.fill(Buffer.alloc(16 * KiB)) as Buffer);
  const store2 = await open(disk);
  // the restarted sender's new cycle plans only the first 64 KiB; it adopts c1's record there
  const c2 = await store2.beginCycle('c2', 0, {
    adoptWithin: { d: [{ offsetBytes: 0, lengthBytes: 64 * KiB }] },
  });
  assert.deepEqual(c2.adopted()['d'], [{ offsetBytes: 0, lengthBytes: 16 * KiB }], `seed=${SEED + 1}`);
  const p = await c2.commit({ cutWallMs: 1, consistency: 'crash-consistent' });
  disk.powerCut('none');
  const store3 = await open(disk);
  const model = new DiskModel();
  model.resize('d', DISK_BYTES);
  model.apply({ kind: 'data', diskId: 'd', offsetBytes: 0, data: a });
  model.snapshot(p.pointId);
  await verifyPoints(store3, model, `seed=${SEED + 1}`);
  await store3.close();
  await store.close().catch(() => undefined);
});

test('after a failed base sync the first cycle starts over: nothing resumed or adopted, bases reset', async () => {
  const { disk, store, rng } = await fresh(SEED + 2);
  const x = rng.fill(Buffer.alloc(16 * KiB)) as Buffer;
  const y = rng.fill(Buffer.alloc(16 * KiB)) as Buffer;
  const c1 = await store.beginCycle('c1', 0);
  await c1.writeChunk('d', 0, x);
  await c1.sync();
  // a restarted sender adopts c1, rewrites the range with newer bytes, and the base sync fails: the
  // newer bytes stay visible in the page cache but never reach the disk (fsyncgate)
  const whole = { d: [{ offsetBytes: 0, lengthBytes: DISK_BYTES }] };
  const c2 = await store.beginCycle('c2', 0, { adoptWithin: whole });
  await c2.writeChunk('d', 0, y);
  disk.failNextSync(`${DIR}/rel/disks/d.base`);
  await assert.rejects(c2.sync(), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_IO'));
  // reconnect in the same process: trusting the cache would verify y by digest and commit x after a
  // power cut; the staging must start over instead
  const again = await store.beginCycle('c2', 0, { adoptWithin: whole });
  assert.deepEqual(again.progress().staged, {}, `seed=${SEED + 2}: nothing resumed`);
  assert.deepEqual(again.adopted(), {}, `seed=${SEED + 2}: nothing adopted`);
  const seen = Buffer.alloc(16 * KiB, 0xee);
  await again.overlayStaged('d', 0, seen);
  assert.ok(
    seen.every((b) => b === 0xee),
    `seed=${SEED + 2}: nothing staged`,
  );
  await again.writeChunk('d', 0, y);
  const p = await again.commit({ cutWallMs: 1, consistency: 'crash-consistent' });
  disk.powerCut('none');
  const store2 = await open(disk);
  const model = new DiskModel();
  model.resize('d', DISK_BYTES);
  model.apply({ kind: 'data', diskId: 'd', offsetBytes: 0, data: y });
  model.snapshot(p.pointId);
  await verifyPoints(store2, model, `seed=${SEED + 2}`);
  await store2.close();
});

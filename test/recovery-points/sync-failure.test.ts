/**
 * Failed syncs (fsyncgate) and full disks: the store never retries a failed datasync and reports
 * success. A failed staging sync breaks the writer (progress never claims the lost chunks); a failed
 * sync while applying a commit fails the store, and reopening it rewrites the redo instead of trusting
 * the cache, so the points stay the old set or the new set, exact.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSecondsiteError } from '../../src/domain/errors.js';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { PointStore } from '../../src/host/recovery-points/point-store.js';
import { PowerCutStorage } from '../../src/testing/faults/power-cut-storage.js';
import { DiskModel, fixedClock, randomCycle, stage, verifyPoints } from './store-harness.js';

const SEED = seedFrom(process.env['SECONDSITE_SEED'], 31337);
const DIR = '/replica';
const T0 = Date.UTC(2026, 10, 1);

async function setup(
  seed: number,
): Promise<{ disk: PowerCutStorage; store: PointStore; model: DiskModel; rng: Rng }> {
  const rng = new Rng(seed);
  const disk = new PowerCutStorage({ seed });
  await disk.mkdir(DIR);
  await disk.syncDir('/');
  const store = await PointStore.open({
    storage: disk,
    storageDir: DIR,
    relationshipId: 'rel',
    clock: fixedClock,
  });
  const model = new DiskModel();
  await store.ensureDisk('d', 48 * 1024);
  model.resize('d', 48 * 1024);
  for (let i = 1; i <= 3; i++) {
    const w = await store.beginCycle(`c${i}`, 0);
    await stage(w, randomCycle(rng, model, 6), rng);
    model.snapshot((await w.commit({ cutWallMs: T0 + i, consistency: 'crash-consistent' })).pointId);
  }
  return { disk, store, model, rng };
}

function reopen(disk: PowerCutStorage): Promise<PointStore> {
  return PointStore.open({ storage: disk, storageDir: DIR, relationshipId: 'rel', clock: fixedClock });
}

test('a failed staging sync breaks the writer; the resumed cycle never counts the lost chunks as staged', async () => {
  const { disk, store, model } = await setup(SEED);
  const w = await store.beginCycle('c4', 0);
  await w.writeChunk('d', 0, Buffer.alloc(4096, 1));
  await w.sync();
  await w.writeChunk('d', 8192, Buffer.alloc(4096, 2));
  disk.failNextSync(`${DIR}/rel/staging/redo.log`);
  await assert.rejects(w.sync(), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_IO'));
  await assert.rejects(w.writeChunk('d', 0, Buffer.alloc(1)), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'),
  );
  disk.powerCut('none');
  const store2 = await reopen(disk);
  const resumed = await store2.beginCycle('c4', 0);
  assert.deepEqual(resumed.progress().staged['d'], [{ offsetBytes: 0, lengthBytes: 4096 }]);
  await verifyPoints(store2, model, `seed=${SEED}`);
  await store2.close();
});

test('a failed base sync during apply fails the store; reopening rewrites the cycle and publishes it exactly', async () => {
  for (let round = 0; round < 6; round++) {
    const seed = SEED + round;
    const { disk, store, model, rng } = await setup(seed);
    const ops = randomCycle(rng, model, 8);
    ops.push({ kind: 'data', diskId: 'd', offsetBytes: 4096, data: Buffer.alloc(4096, 7) });
    model.apply(ops[ops.length - 1] as (typeof ops)[number]);
    model.snapshot('rp-4');
    const w = await store.beginCycle('c4', 0);
    await stage(w, ops, rng);
    disk.failNextSync(`${DIR}/rel/disks/d.base`);
    await assert.rejects(
      w.commit({ cutWallMs: T0 + 4, consistency: 'crash-consistent' }),
      (e) => (e as { code?: string }).code === 'EIO',
      `seed=${seed}`,
    );
    await assert.rejects(store.applyRetention(1), (e) =>
      isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'),
    );
    if (round % 2 === 0) disk.powerCut({ mode: 'random-subset', tear: true });
    else await store.close();
    const store2 = await reopen(disk);
    assert.deepEqual(
      store2.points().map((p) => p.pointId),
      ['rp-1', 'rp-2', 'rp-3', 'rp-4'],
      `seed=${seed}: the intent was durable, so the cycle is rolled forward`,
    );
    await verifyPoints(store2, model, `seed=${seed}`);
    await store2.close();
  }
});

test('a full disk while capturing undo leaves the old points; the cycle commits once space is back', async () => {
  const { disk, store, model, rng } = await setup(SEED + 50);
  const before = model.snapshots.get('rp-3') as Map<string, Buffer>;
  const ops = randomCycle(rng, model, 8);
  ops.push({ kind: 'data', diskId: 'd', offsetBytes: 0, data: Buffer.alloc(8192, 9) });
  model.apply(ops[ops.length - 1] as (typeof ops)[number]);
  const w = await store.beginCycle('c4', 0);
  await stage(w, ops, rng);
  const undoName = `${DIR}/rel/undo/u-3-3.undo`;
  disk.failNextWrite(undoName, 'ENOSPC');
  await assert.rejects(w.commit({ cutWallMs: T0 + 4, consistency: 'crash-consistent' }), (e) => {
    return (e as { code?: string }).code === 'ENOSPC';
  });
  assert.deepEqual(
    store.points().map((p) => p.pointId),
    ['rp-1', 'rp-2', 'rp-3'],
  );
  const view = await store.openPointDisk('rp-3', 'd');
  assert.ok((await view.read(0, 48 * 1024)).equals(before.get('d') as Buffer));
  await view.close();
  // Space is back: the same writer commits (its staging is intact).
  const info = await w.commit({ cutWallMs: T0 + 4, consistency: 'crash-consistent' });
  model.snapshot(info.pointId);
  await verifyPoints(store, model, `seed=${SEED + 50}`);
  await store.close();
});

test('a failed directory sync of the intent fails the store; reopening decides: rolled forward, or old set and resumable', async () => {
  for (const cut of [false, true]) {
    const seed = SEED + 70 + Number(cut);
    const { disk, store, model, rng } = await setup(seed);
    const ops = randomCycle(rng, model, 8);
    model.snapshot('rp-4');
    const w = await store.beginCycle('c4', 0);
    await stage(w, ops, rng);
    disk.failNextSync(`${DIR}/rel/staging`);
    await assert.rejects(w.commit({ cutWallMs: T0 + 4, consistency: 'crash-consistent' }), (e) => {
      return (e as { code?: string }).code === 'EIO';
    });
    await assert.rejects(store.beginCycle('c4', 0), (e) =>
      isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'),
    );
    if (cut) disk.powerCut('none');
    else await store.close();
    const store2 = await reopen(disk);
    const ids = store2.points().map((p) => p.pointId);
    if (cut) {
      assert.deepEqual(ids, ['rp-1', 'rp-2', 'rp-3'], `seed=${seed}: the intent never became durable`);
      const resumed = await store2.beginCycle('c4', 0);
      await resumed.commit({ cutWallMs: T0 + 4, consistency: 'crash-consistent' });
    } else {
      assert.deepEqual(
        ids,
        ['rp-1', 'rp-2', 'rp-3', 'rp-4'],
        `seed=${seed}: the visible intent is rolled forward`,
      );
    }
    await verifyPoints(store2, model, `seed=${seed}`);
    await store2.close();
  }
});

test('a failed catalogue sync in setEpoch fails the store, and the epoch never goes back', async () => {
  const { disk, store, model } = await setup(SEED + 80);
  await store.setEpoch(3);
  disk.failNextSync(DIR + '/rel');
  await assert.rejects(store.setEpoch(4), (e) => (e as { code?: string }).code === 'EIO');
  await assert.rejects(store.setEpoch(5), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'));
  assert.equal(store.state, 'failed');
  await store.close();
  const store2 = await reopen(disk);
  assert.ok(store2.epoch() >= 3, `epoch ${store2.epoch()} went back`);
  await store2.setEpoch(5);
  disk.powerCut('random-subset');
  const store3 = await reopen(disk);
  assert.equal(store3.epoch(), 5);
  await verifyPoints(store3, model, `seed=${SEED + 80}`);
  await store3.close();
});

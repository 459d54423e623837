/**
 * The recovery-point store on real files (NodeStorage): many random cycles against an in-memory model,
 * retention (oldest drops and middle-point merges), resume of staging, epoch fencing, metadata checksums.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isSecondsiteError } from '../../src/domain/errors.js';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { HOUR_MS } from '../../src/domain/retention/retention.policy.js';
import { nextUndoMerge } from '../../src/domain/retention/undo-compaction.js';
import { PointStore } from '../../src/host/recovery-points/point-store.js';
import { NodeStorage } from '../../src/host/storage/node-storage.js';
import type { Clock } from '../../src/domain/clock.js';
import { DiskModel, fixedClock, randomCycle, stage, verifyPoints } from './store-harness.js';

const SEED = seedFrom(process.env['SECONDSITE_SEED'], 20261122);
const T0 = Date.UTC(2026, 10, 1);
let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'secondsite-points-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function openStore(
  dir: string,
  relationshipId = 'rel-1',
  clock: Clock = fixedClock,
): Promise<PointStore> {
  return PointStore.open({ storage: new NodeStorage(), storageDir: dir, relationshipId, clock });
}

/** Gives `store` a 32 KiB disk "d" and four points (rp-1..rp-4) of random cycles, a minute apart. */
async function fourPoints(store: PointStore, rng: Rng): Promise<DiskModel> {
  await store.ensureDisk('d', 32 * 1024);
  const model = new DiskModel();
  model.resize('d', 32 * 1024);
  for (let i = 0; i < 4; i++) {
    const w = await store.beginCycle(`c${i}`, 0);
    await stage(w, randomCycle(rng, model, 6), rng);
    model.snapshot((await w.commit({ cutWallMs: T0 + i * 60_000, consistency: 'crash-consistent' })).pointId);
  }
  return model;
}

/** NodeStorage that runs `hook` once, when an undo file is created: a moment inside a commit or a merge. */
class UndoCreateHook extends NodeStorage {
  hook: (() => Promise<void> | void) | null = null;

  override async open(path: string, mode: 'read' | 'readwrite' | 'create'): ReturnType<NodeStorage['open']> {
    if (mode === 'create' && /\/undo\/u-[^/]+\.undo$/.test(path) && this.hook !== null) {
      const h = this.hook;
      this.hook = null;
      await h();
    }
    return super.open(path, mode);
  }
}

/**
 * A store with one 1 MiB disk "d" whose cycles rewrite a hot 256 KiB range, compaction manual (the
 * tests count the undo files each operation leaves).
 */
async function hotRangeStore(
  name: string,
  clock: Clock,
  seed: number,
): Promise<{ store: PointStore; model: DiskModel; rng: Rng; undoDir: string; hot: number }> {
  const dir = await mkdtemp(join(root, name));
  const store = await PointStore.open({
    storage: new NodeStorage(),
    storageDir: dir,
    relationshipId: 'r',
    clock,
    compaction: 'manual',
  });
  await store.ensureDisk('d', 1024 * 1024);
  const model = new DiskModel();
  model.resize('d', 1024 * 1024);
  return { store, model, rng: new Rng(seed), undoDir: join(dir, 'r', 'undo'), hot: 256 * 1024 };
}

/** A clock the test moves (retention at commit reads the store's clock). */
function settableClock(): Clock & { nowMs: number } {
  return {
    nowMs: T0,
    wallMs() {
      return this.nowMs;
    },
    monotonicMs: () => 0,
  };
}

test('every retained point reads exactly the model through many cycles, retention merges and reopens', async () => {
  for (let round = 0; round < 3; round++) {
    const seed = SEED + round;
    const rng = new Rng(seed);
    const dir = await mkdtemp(join(root, 'model-'));
    const clock = settableClock();
    let store = await openStore(dir, 'rel-1', clock);
    const model = new DiskModel();
    for (const [id, size] of [
      ['disk-a', 192 * 1024],
      ['disk-b', 64 * 1024 + 512],
    ] as const) {
      await store.ensureDisk(id, size);
      model.resize(id, size);
    }
    let cutMs = T0;
    let dropsInMiddle = 0;
    let partialCaptures = 0;
    for (let cycle = 1; cycle <= 40; cycle++) {
      const label = `seed=${seed} cycle=${cycle}`;
      if (cycle === 15) {
        await store.ensureDisk('disk-b', 96 * 1024);
        model.resize('disk-b', 96 * 1024);
      }
      const ops = randomCycle(rng, model);
      const writer = await store.beginCycle(`c-${cycle}`, 1);
      await stage(writer, ops, rng);
      cutMs += (5 + rng.int(40)) * 60_000;
      clock.nowMs = cutMs + rng.int(60_000);
      // retention in the commit (section 6.2) for some cycles: the undo of a dropped latest point is
      // captured only where the kept point before it lacks it
      const beforeCommit = store.points().map((p) => p.pointId);
      const info = await writer.commit({
        cutWallMs: cutMs,
        consistency: rng.chance(0.2) ? 'app-consistent' : 'crash-consistent',
        ...(rng.chance(0.4) ? { retentionHours: 2 + rng.int(3) } : {}),
      });
      model.snapshot(info.pointId);
      assert.equal(store.points().at(-1)?.pointId, info.pointId, label);
      const afterCommit = store.points().map((p) => p.pointId);
      const previousLatest = beforeCommit.at(-1);
      if (previousLatest !== undefined && !afterCommit.includes(previousLatest) && afterCommit.length > 1)
        partialCaptures++;
      if (cycle % 3 === 0) {
        const before = store.points().map((p) => p.pointId);
        const dropped = await store.applyRetention(2 + rng.int(3));
        const after = store.points().map((p) => p.pointId);
        assert.deepEqual(
          after,
          before.filter((id) => !dropped.includes(id)),
          label,
        );
        if (dropped.some((id) => before.indexOf(id) > before.indexOf(after[0] ?? ''))) dropsInMiddle++;
      }
      await verifyPoints(store, model, label, rng);
      if (rng.chance(0.15)) {
        await store.close();
        store = await openStore(dir, 'rel-1', clock);
        await verifyPoints(store, model, `${label} after reopen`, rng);
      }
    }
    assert.ok(
      dropsInMiddle > 0,
      `seed=${seed}: the run never merged a middle point; the test lost its teeth`,
    );
    assert.ok(
      partialCaptures > 0,
      `seed=${seed}: no commit dropped its previous latest point with an older point kept; the test lost its teeth`,
    );
    assert.ok(store.points().length >= 2, `seed=${seed}`);
    // Compaction (in the background all along) drained: every list is a binary counter, the undo
    // directory holds exactly the listed files, and every point still reads exactly.
    await store.compactUndo();
    const lists = store.undoLists();
    for (const l of lists) {
      const weights = l.undo.map((u) => u.cycles);
      assert.equal(
        nextUndoMerge(weights),
        null,
        `seed=${seed}: ${l.pointId} left uncompacted: ${weights.join(',')}`,
      );
    }
    const undo = await readdir(join(dir, 'rel-1', 'undo'));
    assert.deepEqual(undo.sort(), lists.flatMap((l) => l.undo.map((u) => u.file)).sort(), `seed=${seed}`);
    await verifyPoints(store, model, `seed=${seed} after compaction`, rng);
    assert.deepEqual(await readdir(join(dir, 'rel-1', 'staging')), [], `seed=${seed}`);
    await store.close();
  }
});

test('retention keeps the latest and one point per hour; a pinned point survives until its view closes', async () => {
  const dir = await mkdtemp(join(root, 'retention-'));
  const store = await openStore(dir);
  await store.ensureDisk('d', 16 * 1024);
  const model = new DiskModel();
  model.resize('d', 16 * 1024);
  const rng = new Rng(SEED);
  // 12 points, every 20 minutes: 4 hours, 3 per hour.
  for (let i = 0; i < 12; i++) {
    const ops = randomCycle(rng, model, 4);
    const w = await store.beginCycle(`c${i}`, 0);
    await stage(w, ops, rng);
    const info = await w.commit({ cutWallMs: T0 + i * 20 * 60_000 + 1, consistency: 'crash-consistent' });
    model.snapshot(info.pointId);
  }
  const pinned = await store.openPointDisk('rp-2', 'd');
  const dropped = await store.applyRetention(3);
  // Window: the 3 h before the latest cut (T0+3h40m+1ms), hours 1..3 keep rp-6, rp-9, rp-12 (rp-3,
  // cut at T0+40m+1ms, is just outside); rp-2 is pinned.
  assert.deepEqual(
    store.points().map((p) => p.pointId),
    ['rp-2', 'rp-6', 'rp-9', 'rp-12'],
  );
  assert.equal(dropped.length, 8);
  await verifyPoints(store, model, `seed=${SEED} pinned`);
  assert.ok((await pinned.read(0, 16 * 1024)).equals(model.snapshots.get('rp-2')?.get('d') as Buffer));
  await pinned.close();
  assert.deepEqual(await store.applyRetention(3), ['rp-2']);
  await verifyPoints(store, model, `seed=${SEED} unpinned`);
  await assert.rejects(store.openPointDisk('rp-2', 'd'), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_RECOVERY_POINT_NOT_FOUND'),
  );
  await store.close();
});

test('resume: reopening the same cycle keeps what was synced; another cycle id discards it', async () => {
  const seed = SEED + 100;
  const rng = new Rng(seed);
  const dir = await mkdtemp(join(root, 'resume-'));
  let store = await openStore(dir);
  await store.ensureDisk('d', 128 * 1024);
  const model = new DiskModel();
  model.resize('d', 128 * 1024);
  const first = await store.beginCycle('c1', 2);
  const chunkA = rng.fill(Buffer.alloc(8192)) as Buffer;
  const chunkB = rng.fill(Buffer.alloc(4096)) as Buffer;
  await first.writeChunk('d', 0, chunkA);
  await first.zeroRange('d', 65536, 4096);
  const progress = await first.sync();
  assert.deepEqual(progress.staged['d'], [
    { offsetBytes: 0, lengthBytes: 8192 },
    { offsetBytes: 65536, lengthBytes: 4096 },
  ]);
  await first.writeChunk('d', 16384, chunkB);
  assert.equal(first.progress().staged['d']?.length, 2, 'unsynced chunks are not reported as staged');
  // The agent restarts (no power cut: the unsynced write is in the page cache and is kept).
  await store.close();
  store = await openStore(dir);
  const resumed = await store.beginCycle('c1', 2);
  assert.deepEqual(resumed.progress().staged['d'], [
    { offsetBytes: 0, lengthBytes: 8192 },
    { offsetBytes: 16384, lengthBytes: 4096 },
    { offsetBytes: 65536, lengthBytes: 4096 },
  ]);
  // Beginning the same cycle again invalidates the previous writer object.
  const again = await store.beginCycle('c1', 2);
  await assert.rejects(resumed.sync(), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'));
  await again.writeChunk('d', 0, chunkA); // a resend is harmless
  const p1 = await again.commit({ cutWallMs: T0, consistency: 'crash-consistent' });
  model.apply({ kind: 'data', diskId: 'd', offsetBytes: 0, data: chunkA });
  model.apply({ kind: 'data', diskId: 'd', offsetBytes: 16384, data: chunkB });
  model.snapshot(p1.pointId);
  await verifyPoints(store, model, `seed=${seed}`);

  // A different cycle id throws the staged one away.
  const c2 = await store.beginCycle('c2', 2);
  await c2.writeChunk('d', 4096, rng.fill(Buffer.alloc(4096)) as Buffer);
  await c2.sync();
  const c3 = await store.beginCycle('c3', 2);
  assert.deepEqual(c3.progress().staged, {});
  const chunkC = rng.fill(Buffer.alloc(512)) as Buffer;
  await c3.writeChunk('d', 100_000, chunkC);
  const p2 = await c3.commit({ cutWallMs: T0 + 1, consistency: 'crash-consistent' });
  model.apply({ kind: 'data', diskId: 'd', offsetBytes: 100_000, data: chunkC });
  model.snapshot(p2.pointId);
  await verifyPoints(store, model, `seed=${seed}`);
  // A cycle committed already is not committed twice (a resend after a lost acknowledgement).
  const dup = await store.beginCycle('c3', 2);
  await dup.writeChunk('d', 0, chunkC);
  await assert.rejects(dup.commit({ cutWallMs: T0 + 2, consistency: 'crash-consistent' }), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_ALREADY_EXISTS'),
  );
  assert.equal(store.points().length, 2);
  // discard() leaves nothing staged.
  const c4 = await store.beginCycle('c4', 2);
  await c4.writeChunk('d', 0, chunkB);
  await c4.discard();
  assert.deepEqual(await readdir(join(dir, 'rel-1', 'staging')), []);
  await assert.rejects(c4.commit({ cutWallMs: 0, consistency: 'crash-consistent' }), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'),
  );
  await store.close();
});

test('epoch: never decreases, persists, fences older cycles even at commit', async () => {
  const dir = await mkdtemp(join(root, 'epoch-'));
  let store = await openStore(dir);
  await store.ensureDisk('d', 8192);
  assert.equal(store.epoch(), 0);
  await store.setEpoch(5);
  await assert.rejects(store.setEpoch(3), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_STALE_EPOCH'));
  await store.setEpoch(5);
  await store.close();
  store = await openStore(dir);
  assert.equal(store.epoch(), 5);
  await assert.rejects(store.beginCycle('old', 4), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_STALE_EPOCH'));
  const w = await store.beginCycle('c', 5);
  await w.writeChunk('d', 0, Buffer.alloc(4096, 1));
  await store.setEpoch(6); // failover while the cycle was in flight
  await assert.rejects(w.commit({ cutWallMs: T0, consistency: 'crash-consistent' }), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_STALE_EPOCH'),
  );
  assert.equal(store.points().length, 0);
  // A newer sender epoch is adopted by the commit.
  const w7 = await store.beginCycle('c7', 7);
  const p = await w7.commit({ cutWallMs: T0, consistency: 'app-consistent' });
  assert.equal(p.epoch, 7);
  assert.equal(p.consistency, 'app-consistent');
  assert.equal(store.epoch(), 7);
  await store.close();
  store = await openStore(dir);
  assert.equal(store.epoch(), 7);
  assert.deepEqual(store.points(), [p]);
  await store.close();
});

test('a torn or altered catalogue or undo index is detected, never trusted', async () => {
  const dir = await mkdtemp(join(root, 'corrupt-'));
  let store = await openStore(dir);
  await store.ensureDisk('d', 8192);
  for (let i = 0; i < 2; i++) {
    const w = await store.beginCycle(`c${i}`, 0);
    await w.writeChunk('d', 0, Buffer.alloc(4096, i + 1));
    await w.commit({ cutWallMs: T0 + i, consistency: 'crash-consistent' });
  }
  await store.close();
  const cat = join(dir, 'rel-1', 'catalogue.meta');
  const good = await readFile(cat);
  const bad = Buffer.from(good);
  const at = bad.indexOf('"epoch":0');
  bad.write('"epoch":9', at);
  await writeFile(cat, bad);
  await assert.rejects(openStore(dir), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_METADATA_CORRUPT'));
  await writeFile(cat, good.subarray(0, good.length - 10));
  await assert.rejects(openStore(dir), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_METADATA_CORRUPT'));
  await writeFile(cat, good);
  const [undoName] = await readdir(join(dir, 'rel-1', 'undo'));
  const undoPath = join(dir, 'rel-1', 'undo', undoName as string);
  const undo = await readFile(undoPath);
  const flipped = Buffer.from(undo);
  const idx = flipped.indexOf('secondsite-undo-1');
  flipped[idx] = (flipped[idx] as number) ^ 0x01;
  await writeFile(undoPath, flipped);
  await assert.rejects(openStore(dir), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_METADATA_CORRUPT'));
  await writeFile(undoPath, undo);
  store = await openStore(dir);
  assert.equal(store.points().length, 2);
  await store.close();
});

test('names that could leave the storage directory are refused', async () => {
  const dir = await mkdtemp(join(root, 'names-'));
  await assert.rejects(
    PointStore.open({
      storage: new NodeStorage(),
      storageDir: dir,
      relationshipId: '../x',
      clock: fixedClock,
    }),
    (e) => isSecondsiteError(e, 'SECONDSITE_ERR_UNSAFE_PATH'),
  );
  const store = await openStore(dir);
  await assert.rejects(store.ensureDisk('a/b', 4096), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_UNSAFE_PATH'),
  );
  await store.ensureDisk('d', 8192);
  await assert.rejects(store.ensureDisk('d', 4096), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT'),
  );
  const w = await store.beginCycle('c', 0);
  await assert.rejects(w.writeChunk('d', 8000, Buffer.alloc(1000)), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT'),
  );
  await assert.rejects(w.writeChunk('nope', 0, Buffer.alloc(1)), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_NOT_FOUND'),
  );
  await store.close();
});

test('reads of older points racing commits and retention always return the point exactly', async () => {
  const seed = SEED + 200;
  const rng = new Rng(seed);
  const dir = await mkdtemp(join(root, 'race-'));
  const store = await openStore(dir);
  await store.ensureDisk('d', 64 * 1024);
  const model = new DiskModel();
  model.resize('d', 64 * 1024);
  const commit = async (n: number): Promise<void> => {
    const w = await store.beginCycle(`c${n}`, 0);
    await stage(w, randomCycle(rng, model, 10), rng);
    model.snapshot(
      (await w.commit({ cutWallMs: T0 + n * 10 * 60_000, consistency: 'crash-consistent' })).pointId,
    );
  };
  await commit(1);
  await commit(2);
  const views = await Promise.all(['rp-1', 'rp-2'].map((id) => store.openPointDisk(id, 'd')));
  let stop = false;
  let reads = 0;
  const reader = async (): Promise<void> => {
    while (!stop) {
      for (const v of views) {
        const off = rng.int(64 * 1024);
        const len = rng.int(64 * 1024 - off + 1);
        const got = await v.read(off, len);
        const want = (model.snapshots.get(v.pointId)?.get('d') as Buffer).subarray(off, off + len);
        assert.ok(got.equals(want), `seed=${seed}: racing read of ${v.pointId} at ${off}+${len}`);
        reads++;
      }
      await new Promise((r) => setImmediate(r));
    }
  };
  const readers = [reader(), reader()];
  for (let n = 3; n <= 12; n++) {
    await commit(n);
    if (n % 4 === 0) await store.applyRetention(1);
  }
  stop = true;
  await Promise.all(readers);
  assert.ok(reads > 20, `seed=${seed}: only ${reads} racing reads`);
  for (const v of views) await v.close();
  await verifyPoints(store, model, `seed=${seed} after the race`);
  await store.close();
});

test('retention writes no undo data; the shadowed undo of dropped points is punched; lists stay log2 long', async () => {
  // A disk that rewrites the same 256 KiB every 30 s cycle: at every commit the previous latest point
  // is dropped (the latest is the hour's keeper) and its undo joins the previous hour's keeper's list.
  const { store, model, rng, undoDir, hot } = await hotRangeStore('churn-', fixedClock, SEED + 400);
  const allocatedBytes = async (): Promise<number> => {
    let total = 0;
    for (const name of await readdir(undoDir)) total += (await stat(join(undoDir, name))).blocks * 512;
    return total;
  };
  const hourStart = T0 + 5 * HOUR_MS;
  const cycles = 40;
  for (let n = 0; n <= cycles; n++) {
    const w = await store.beginCycle(`c${n}`, 0);
    const data = rng.fill(Buffer.alloc(hot)) as Buffer;
    const op = { kind: 'data' as const, diskId: 'd', offsetBytes: 0, data };
    model.apply(op);
    await stage(w, [op], rng);
    // c0 is the last point of the previous hour (the keeper), then 40 points 30 s apart
    const cutWallMs = n === 0 ? hourStart - 1 : hourStart + n * 30_000;
    model.snapshot((await w.commit({ cutWallMs, consistency: 'crash-consistent' })).pointId);
    const filesBefore = new Set(await readdir(undoDir));
    const dropped = await store.applyRetention(24);
    if (n >= 2) assert.equal(dropped.length, 1, `cycle ${n}: the previous latest point is dropped`);
    const created = (await readdir(undoDir)).filter((f) => !filesBefore.has(f));
    assert.deepEqual(created, [], `cycle ${n}: retention wrote an undo file`);
    // the keeper's list holds every dropped cycle's undo, all but its first file fully shadowed and
    // punched: the space stays that of one copy of the hot range (plus indexes), not n copies
    assert.ok(
      (await allocatedBytes()) <= 2 * hot + 64 * 1024,
      `cycle ${n}: undo takes ${await allocatedBytes()} bytes: ${JSON.stringify(store.undoLists())} ${JSON.stringify(await Promise.all((await readdir(undoDir)).map(async (f) => [f, (await stat(join(undoDir, f))).blocks])))}`,
    );
  }
  await verifyPoints(store, model, `seed=${SEED + 400} before compaction`);
  const keeper = store.undoLists()[0];
  assert.equal(keeper?.undo.length, cycles, 'the keeper lists one file per cycle before compaction');
  const merges = await store.compactUndo();
  assert.ok(merges > 0);
  const compacted = store.undoLists()[0]?.undo ?? [];
  assert.ok(
    compacted.length <= Math.floor(Math.log2(cycles)) + 1,
    `${compacted.length} files after compaction`,
  );
  assert.equal(
    compacted.reduce((a, u) => a + u.cycles, 0),
    cycles,
  );
  await verifyPoints(store, model, `seed=${SEED + 400} after compaction`);
  assert.deepEqual((await readdir(undoDir)).sort(), compacted.map((u) => u.file).sort());
  await store.close();
});

test('a compaction racing retention: the point of the files being merged is dropped as the oldest; reads stay exact', async () => {
  const seed = SEED + 300;
  const rng = new Rng(seed);
  const dir = await mkdtemp(join(root, 'compact-race-'));
  const storage = new UndoCreateHook();
  const store = await PointStore.open({
    storage,
    storageDir: dir,
    relationshipId: 'r',
    clock: fixedClock,
    compaction: 'manual',
  });
  const model = await fourPoints(store, rng);
  // With 0 hours only the latest and pinned points stay: rp-1 is pinned, so rp-2 and rp-3 go and their
  // undo joins rp-1's list, which then needs a merge.
  const pinned = await store.openPointDisk('rp-1', 'd');
  assert.deepEqual(await store.applyRetention(0), ['rp-2', 'rp-3']);
  assert.equal(store.undoLists()[0]?.undo.length, 3);
  let hookRan = false;
  storage.hook = async () => {
    // while the merged file is being written: rp-1 still reads exactly, then goes as the oldest
    const want = model.snapshots.get('rp-1')?.get('d') as Buffer;
    assert.ok((await pinned.read(0, want.length)).equals(want), `seed=${seed}: read during compaction`);
    await pinned.close();
    assert.deepEqual(await store.applyRetention(0), ['rp-1']);
    hookRan = true;
  };
  assert.equal(
    await store.compactUndo(),
    0,
    `seed=${seed}: the merge of a dropped point's files is not published`,
  );
  assert.ok(hookRan, `seed=${seed}: the hook did not run; the test lost its teeth`);
  assert.deepEqual(
    store.points().map((p) => p.pointId),
    ['rp-4'],
  );
  await verifyPoints(store, model, `seed=${seed} after the race`);
  assert.deepEqual(await readdir(join(dir, 'r', 'undo')), [], `seed=${seed}: files left behind`);
  await store.close();
});

/** NodeStorage whose next `failUndoFiles` new undo files refuse every write (a full disk). */
class FullDiskForUndo extends NodeStorage {
  failUndoFiles = 0;

  override async open(path: string, mode: 'read' | 'readwrite' | 'create'): ReturnType<NodeStorage['open']> {
    const file = await super.open(path, mode);
    if (mode !== 'create' || !/\/undo\/u-[^/]+\.undo$/.test(path) || this.failUndoFiles === 0) return file;
    this.failUndoFiles--;
    const full = (): Error =>
      Object.assign(new Error('no space left on device (injected)'), { code: 'ENOSPC' });
    return new Proxy(file, {
      get(target, key, receiver) {
        if (key === 'write' || key === 'writev' || key === 'writeScattered')
          return () => Promise.reject(full());
        if (key === 'writeNow')
          return () => {
            throw full();
          };
        const v: unknown = Reflect.get(target, key, receiver);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }
}

test('a background compaction that meets a full disk is counted and reported, leaves nothing behind, and the next run compacts', async () => {
  const seed = SEED + 350;
  const rng = new Rng(seed);
  const dir = await mkdtemp(join(root, 'compact-full-'));
  const storage = new FullDiskForUndo();
  const errors: unknown[] = [];
  const store = await PointStore.open({
    storage,
    storageDir: dir,
    relationshipId: 'r',
    clock: fixedClock,
    onBackgroundError: (e) => errors.push(e),
  });
  const model = await fourPoints(store, rng);
  assert.deepEqual(store.undoStats(), { files: 3, longestList: 1, backgroundErrors: 0 });
  // rp-2 and rp-3 go; their undo joins pinned rp-1's list, whose merge (in the background) fails
  const pinned = await store.openPointDisk('rp-1', 'd');
  storage.failUndoFiles = 1;
  assert.deepEqual(await store.applyRetention(0), ['rp-2', 'rp-3']);
  await store.compactUndo(); // waits for the background run, then merges itself
  assert.equal(storage.failUndoFiles, 0, `seed=${seed}: no merge met the full disk; the test lost its teeth`);
  assert.equal(errors.length, 1, `seed=${seed}: ${String(errors)}`);
  assert.equal((errors[0] as { code?: string }).code, 'ENOSPC');
  const lists = store.undoLists();
  assert.equal(nextUndoMerge(lists[0]?.undo.map((u) => u.cycles) ?? []), null, `seed=${seed}`);
  assert.deepEqual(store.undoStats(), {
    files: lists[0]?.undo.length,
    longestList: lists[0]?.undo.length,
    backgroundErrors: 1,
  });
  assert.deepEqual(
    (await readdir(join(dir, 'r', 'undo'))).sort(),
    lists.flatMap((l) => l.undo.map((u) => u.file)).sort(),
    `seed=${seed}: the failed merge left a file behind`,
  );
  await pinned.close();
  await verifyPoints(store, model, `seed=${seed} after the failed and the good merge`);
  await store.close();
});

test('retention at commit: the undo of a dropped latest point is captured only where the kept point before it lacks it', async () => {
  const clock = settableClock();
  const { store, model, rng, undoDir, hot } = await hotRangeStore('at-commit-', clock, SEED + 500);
  const hourStart = T0 + 5 * HOUR_MS;
  const commit = async (n: number, offsetBytes: number, lengthBytes: number): Promise<void> => {
    const w = await store.beginCycle(`c${n}`, 0);
    const op = {
      kind: 'data' as const,
      diskId: 'd',
      offsetBytes,
      data: rng.fill(Buffer.alloc(lengthBytes)) as Buffer,
    };
    model.apply(op);
    await stage(w, [op], rng);
    const cutWallMs = n === 0 ? hourStart - 1 : hourStart + n * 30_000;
    clock.nowMs = cutWallMs + 1000;
    model.snapshot(
      (await w.commit({ cutWallMs, consistency: 'crash-consistent', retentionHours: 24 })).pointId,
    );
  };
  // c0 ends the previous hour (kept as its hourly point); c1 is kept until c2 replaces it in the hour
  await commit(0, 0, hot);
  await commit(1, 0, hot);
  assert.equal((await readdir(undoDir)).length, 1, 'the keeper rp-1 has its full undo');
  for (let n = 2; n <= 12; n++) {
    await commit(n, 0, hot);
    assert.deepEqual(
      store.points().map((p) => p.pointId),
      ['rp-1', `rp-${n + 1}`],
      `cycle ${n}`,
    );
    // the keeper's chain already holds the old content of the hot range: the commit captured nothing
    assert.equal((await readdir(undoDir)).length, 1, `cycle ${n}: the commit wrote an undo file`);
  }
  // a cycle that also writes a new range: only that range is captured
  await commit(13, 512 * 1024, 64 * 1024);
  const files = await readdir(undoDir);
  assert.equal(files.length, 2);
  const added = files.find((f) => !f.startsWith('u-1-')) as string;
  assert.ok((await stat(join(undoDir, added))).size < 64 * 1024 + 4096, 'only the new range is captured');
  await verifyPoints(store, model, `seed=${SEED + 500}`);
  await store.close();
});

test('a view of a point that a commit drops waits for the commit and finds the point gone; others open at once', async () => {
  const seed = SEED + 600;
  const rng = new Rng(seed);
  const dir = await mkdtemp(join(root, 'closing-'));
  const storage = new UndoCreateHook();
  const clock = settableClock();
  const store = await PointStore.open({
    storage,
    storageDir: dir,
    relationshipId: 'r',
    clock,
  });
  await store.ensureDisk('d', 64 * 1024);
  const model = new DiskModel();
  model.resize('d', 64 * 1024);
  const commit = async (n: number, cutWallMs: number, retentionHours?: number): Promise<void> => {
    const w = await store.beginCycle(`c${n}`, 0);
    // every cycle writes a fresh range, so a dropped latest point still has undo to capture
    const op = {
      kind: 'data' as const,
      diskId: 'd',
      offsetBytes: n * 4096,
      data: rng.fill(Buffer.alloc(4096)) as Buffer,
    };
    model.apply(op);
    await stage(w, [op], rng);
    clock.nowMs = cutWallMs + 1000;
    model.snapshot(
      (
        await w.commit({
          cutWallMs,
          consistency: 'crash-consistent',
          ...(retentionHours !== undefined ? { retentionHours } : {}),
        })
      ).pointId,
    );
  };
  await commit(1, T0 + HOUR_MS - 1);
  await commit(2, T0 + HOUR_MS + 1000);
  let doomed: Promise<unknown> | null = null;
  let kept: Promise<{ close(): Promise<void> }> | null = null;
  storage.hook = () => {
    // while the commit that drops rp-2 captures its undo
    doomed = store.openPointDisk('rp-2', 'd');
    kept = store.openPointDisk('rp-1', 'd');
  };
  await commit(3, T0 + HOUR_MS + 2000, 24);
  assert.ok(doomed !== null && kept !== null, `seed=${seed}: the hook did not run; the test lost its teeth`);
  assert.deepEqual(
    store.points().map((p) => p.pointId),
    ['rp-1', 'rp-3'],
  );
  await assert.rejects(doomed, (e) => isSecondsiteError(e, 'SECONDSITE_ERR_RECOVERY_POINT_NOT_FOUND'));
  await (await (kept as Promise<{ close(): Promise<void> }>)).close();
  await verifyPoints(store, model, `seed=${seed}`);
  await store.close();
});

test('a test view asked for before a commit with retention runs keeps its point: the view pins it at the call', async () => {
  const seed = SEED + 700;
  const rng = new Rng(seed);
  const dir = await mkdtemp(join(root, 'view-pin-'));
  const clock = settableClock();
  const store = await openStore(dir, 'r', clock);
  await store.ensureDisk('d', 32 * 1024);
  const model = new DiskModel();
  model.resize('d', 32 * 1024);
  const writers = [];
  for (let n = 1; n <= 3; n++) {
    const w = await store.beginCycle(`c${n}`, 0);
    await stage(w, randomCycle(rng, model, 4), rng);
    if (n === 3) {
      writers.push(w);
      break;
    }
    model.snapshot((await w.commit({ cutWallMs: T0 + n * 1000, consistency: 'crash-consistent' })).pointId);
  }
  model.snapshot('rp-3');
  clock.nowMs = T0 + 10_000;
  // the commit (retention 0: only the latest and pinned points stay) is asked first, the view right after
  const committing = (writers[0] as (typeof writers)[number]).commit({
    cutWallMs: T0 + 3000,
    consistency: 'crash-consistent',
    retentionHours: 0,
  });
  const viewing = store.openTestView('rp-2', 'v1');
  await committing;
  const view = await viewing;
  assert.deepEqual(
    store.points().map((p) => p.pointId),
    ['rp-2', 'rp-3'],
    `seed=${seed}: the viewed point is kept`,
  );
  await verifyPoints(store, model, `seed=${seed}`);
  await view.discard();
  await store.close();
});

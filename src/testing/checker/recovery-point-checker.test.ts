// Proves the checker: legal images (from a real workload run and from the replay model) pass, and
// each kind of damage is reported with the right kind. Seeded: SECONDSITE_SEED replays a failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, seedFrom } from '../../domain/random.js';
import { BLOCK_SIZE_BYTES, SECTOR_SIZE_BYTES, encodeBlock, isPayloadByte } from '../workload/block-format.js';
import { MemoryTarget } from '../workload/memory-target.js';
import { WorkloadGenerator, type WorkloadOptions } from '../workload/workload-generator.js';
import { HistoryRecorder, type HistoryOp, type WriteHistory } from '../workload/write-history.js';
import { replayHistory } from './history-replay.js';
import {
  checkRecoveryPoint,
  formatReport,
  recoveryPointFreshness,
  type CheckMode,
  type CheckReport,
  type ViolationKind,
} from './recovery-point-checker.js';

const BASE_SEED = seedFrom(process.env.SECONDSITE_SEED, 20261122);
const CASES = 12;
const DISK_BYTES = 256 * BLOCK_SIZE_BYTES;

interface Run {
  seed: number;
  history: WriteHistory;
  images: Map<number, Buffer>;
  endMs: number;
}

async function run(seed: number, extra: Partial<WorkloadOptions> = {}): Promise<Run> {
  const targets = [0, 1].map((i) => new MemoryTarget(DISK_BYTES, { seed: seed + i }));
  const gen = new WorkloadGenerator({
    seed,
    disks: targets.map((target, diskId) => ({ diskId, sizeBytes: DISK_BYTES, target })),
    maxEpochs: 150,
    queueDepth: 6,
    maxBlocksPerWrite: 8,
    zeroProbability: 0.05,
    trimProbability: 0.05,
    ...extra,
  });
  const result = await gen.run();
  assert.equal(result.stoppedBy, 'maxEpochs', `seed ${seed}`);
  return {
    seed,
    history: gen.history,
    images: new Map(targets.map((t, i) => [i, t.image])),
    endMs: Number.MAX_SAFE_INTEGER,
  };
}

async function check(
  history: WriteHistory,
  images: Map<number, Buffer>,
  mode: CheckMode = 'recovery-point',
  cutTimeMs?: number,
): Promise<CheckReport> {
  return checkRecoveryPoint({
    history,
    disks: [...images].map(([diskId, buffer]) => ({ diskId, buffer })),
    mode,
    ...(cutTimeMs !== undefined ? { cutTimeMs } : {}),
  });
}

function clone(images: Map<number, Buffer>): Map<number, Buffer> {
  return new Map([...images].map(([k, v]) => [k, Buffer.from(v)]));
}

/** Versions (ops in epoch order) of one block. */
function versionsOf(history: WriteHistory, diskId: number, lba: number): HistoryOp[] {
  return history.ops
    .filter((op) => op.diskId === diskId && lba >= op.lba && lba < op.lba + op.blocks)
    .sort((a, b) => a.epoch - b.epoch);
}

function expectKind(
  report: CheckReport,
  kind: ViolationKind,
  diskId: number,
  lba: number,
  seed: number,
): void {
  assert.ok(!report.ok, `seed ${seed}: damage not detected\n${formatReport(report)}`);
  assert.ok(
    report.violations.some((v) => v.kind === kind && v.diskId === diskId && v.lba === lba),
    `seed ${seed}: expected ${kind} at disk ${diskId} lba ${lba}\n${formatReport(report)}`,
  );
}

/** Blocks whose final version is a data write of an epoch below the history's last. */
function settledDataBlocks(
  history: WriteHistory,
): Array<{ diskId: number; lba: number; versions: HistoryOp[] }> {
  const out: Array<{ diskId: number; lba: number; versions: HistoryOp[] }> = [];
  for (const d of history.header.disks) {
    for (let lba = 0; lba < d.sizeBytes / BLOCK_SIZE_BYTES; lba++) {
      const versions = versionsOf(history, d.diskId, lba);
      const last = versions[versions.length - 1];
      if (last && last.kind === 'write' && last.epoch < history.maxEpoch)
        out.push({ diskId: d.diskId, lba, versions });
    }
  }
  return out;
}

test('a real workload run leaves a legal image in every mode', async () => {
  for (let c = 0; c < CASES; c++) {
    const seed = BASE_SEED + c;
    const r = await run(seed, { flushProbability: 0.3, fuaProbability: 0.2 });
    for (const mode of ['recovery-point', 'crash', 'planned'] as const) {
      const report = await check(r.history, r.images, mode, r.endMs);
      assert.ok(report.ok, `seed ${seed} mode ${mode}\n${formatReport(report)}`);
    }
    const report = await check(r.history, r.images);
    assert.ok(
      report.stats.stampedBlocks > 0 && report.maxEpoch > 100,
      `seed ${seed}: ${formatReport(report)}`,
    );
  }
});

test('every replayed intermediate state (partial, torn last epoch) is a legal recovery point', async () => {
  for (let c = 0; c < CASES; c++) {
    const seed = BASE_SEED + 100 + c;
    const r = await run(seed, { flushProbability: 0.5, fuaProbability: 0.2 });
    const rng = new Rng(seed);
    for (let k = 0; k < 8; k++) {
      const through = rng.int(r.history.maxEpoch);
      const images = replayHistory(r.history, {
        throughEpoch: through,
        partialProbability: 0.5,
        tearProbability: 0.3,
        rng,
      });
      // The cut: when epoch through+1 was submitted, so everything flushed so far is required.
      const next = r.history.ops.find((op) => op.epoch === through + 1);
      const cut = next ? next.tSubmitMs : r.endMs;
      const report = await check(r.history, images, 'recovery-point', cut);
      assert.ok(report.ok, `seed ${seed} through ${through}\n${formatReport(report)}`);
      assert.ok(
        report.maxEpoch === through || report.maxEpoch === through + 1 || report.maxEpoch < through,
        `seed ${seed}`,
      );
      // The same image judged with the cut after the run (every flush acked) must not be ok unless
      // nothing was flushed after `through`.
      const flushedLater = r.history.flushes.some((f) => f.epoch > through + 1 && f.tAckMs !== null);
      if (flushedLater) {
        const late = await check(r.history, images, 'recovery-point', r.endMs);
        assert.ok(
          !late.ok && late.violationCounts.LOST_FLUSHED_WRITE,
          `seed ${seed} through ${through}\n${formatReport(late)}`,
        );
      }
      // A crash image of the primary without ordering is also legal in 'crash' mode.
      assert.ok((await check(r.history, images, 'crash', cut)).ok, `seed ${seed} crash mode`);
    }
  }
});

test('CORRUPT: a flipped payload or header byte', async () => {
  for (let c = 0; c < CASES; c++) {
    const seed = BASE_SEED + 200 + c;
    const r = await run(seed);
    const rng = new Rng(seed);
    const target = rng.pick(settledDataBlocks(r.history));
    for (const where of ['payload', 'header', 'stamp'] as const) {
      const images = clone(r.images);
      const img = images.get(target.diskId) as Buffer;
      let byte: number;
      do byte = rng.int(BLOCK_SIZE_BYTES);
      while (
        where === 'payload'
          ? !isPayloadByte(byte)
          : where === 'header'
            ? byte >= 64
            : isPayloadByte(byte) || byte < SECTOR_SIZE_BYTES
      );
      const at = target.lba * BLOCK_SIZE_BYTES + byte;
      img[at] = (img[at] as number) ^ (1 << rng.int(8));
      expectKind(await check(r.history, images), 'CORRUPT', target.diskId, target.lba, seed);
    }
  }
});

test('HOLE: a block rolled back to an older write, or to zeros', async () => {
  for (let c = 0; c < CASES; c++) {
    const seed = BASE_SEED + 300 + c;
    const r = await run(seed);
    const rng = new Rng(seed);
    const candidates = settledDataBlocks(r.history).filter(
      (b) => b.versions.length >= 2 && (b.versions[b.versions.length - 1] as HistoryOp).blocks === 1,
    );
    const target = rng.pick(candidates);
    const older = rng.pick(target.versions.slice(0, -1));
    const images = clone(r.images);
    const img = images.get(target.diskId) as Buffer;
    if (older.kind === 'write') {
      encodeBlock(
        r.seed,
        { diskId: target.diskId, lba: target.lba, writeId: older.writeId, epoch: older.epoch },
        img,
        target.lba * BLOCK_SIZE_BYTES,
      );
    } else {
      img.fill(0, target.lba * BLOCK_SIZE_BYTES, (target.lba + 1) * BLOCK_SIZE_BYTES);
    }
    expectKind(await check(r.history, images), 'HOLE', target.diskId, target.lba, seed);
    // Zeros where an earlier epoch's write must be.
    const zeroed = clone(r.images);
    (zeroed.get(target.diskId) as Buffer).fill(
      0,
      target.lba * BLOCK_SIZE_BYTES,
      (target.lba + 1) * BLOCK_SIZE_BYTES,
    );
    expectKind(await check(r.history, zeroed), 'HOLE', target.diskId, target.lba, seed);
  }
});

test('TORN: a block torn across sectors, and a multi-block write partly present, in an older epoch', async () => {
  for (let c = 0; c < CASES; c++) {
    const seed = BASE_SEED + 400 + c;
    const r = await run(seed);
    const rng = new Rng(seed);
    const target = rng.pick(settledDataBlocks(r.history));
    const last = target.versions[target.versions.length - 1] as HistoryOp;
    const images = clone(r.images);
    const img = images.get(target.diskId) as Buffer;
    const from = 1 + rng.int(7);
    img.fill(
      0,
      target.lba * BLOCK_SIZE_BYTES + from * SECTOR_SIZE_BYTES,
      (target.lba + 1) * BLOCK_SIZE_BYTES,
    );
    const report = await check(r.history, images);
    expectKind(report, 'TORN', target.diskId, target.lba, seed);

    // Multi-block write of an older epoch with one block rolled back while the rest is present.
    const multi = r.history.ops.find(
      (op) =>
        op.kind === 'write' &&
        op.blocks > 1 &&
        op.epoch < r.history.maxEpoch - 1 &&
        [...Array(op.blocks).keys()].every((i) => {
          const v = versionsOf(r.history, op.diskId, op.lba + i);
          return v[v.length - 1] === op;
        }),
    );
    if (!multi) continue;
    const images2 = clone(r.images);
    (images2.get(multi.diskId) as Buffer).fill(
      0,
      multi.lba * BLOCK_SIZE_BYTES,
      (multi.lba + 1) * BLOCK_SIZE_BYTES,
    );
    expectKind(await check(r.history, images2), 'TORN', multi.diskId, multi.lba, seed);
    void last;
  }
});

test('MISDIRECTED and PHANTOM: a block at the wrong lba or disk, a write never issued, another run', async () => {
  for (let c = 0; c < CASES; c++) {
    const seed = BASE_SEED + 500 + c;
    const r = await run(seed);
    const rng = new Rng(seed);
    const blocks = settledDataBlocks(r.history);
    const a = rng.pick(blocks);
    const b = rng.pick(blocks.filter((x) => x.diskId !== a.diskId || x.lba !== a.lba));
    const images = clone(r.images);
    const src = images.get(a.diskId) as Buffer;
    src.copy(
      images.get(b.diskId) as Buffer,
      b.lba * BLOCK_SIZE_BYTES,
      a.lba * BLOCK_SIZE_BYTES,
      (a.lba + 1) * BLOCK_SIZE_BYTES,
    );
    expectKind(await check(r.history, images), 'MISDIRECTED', b.diskId, b.lba, seed);

    const phantom = clone(r.images);
    const maxId = Math.max(...r.history.ops.map((op) => op.writeId));
    encodeBlock(
      r.seed,
      { diskId: b.diskId, lba: b.lba, writeId: maxId + 1 + rng.int(1000), epoch: 3 },
      phantom.get(b.diskId),
      b.lba * BLOCK_SIZE_BYTES,
    );
    expectKind(await check(r.history, phantom), 'PHANTOM', b.diskId, b.lba, seed);

    const foreign = clone(r.images);
    const last = b.versions[b.versions.length - 1] as HistoryOp;
    encodeBlock(
      r.seed + 1,
      { diskId: b.diskId, lba: b.lba, writeId: last.writeId, epoch: last.epoch },
      foreign.get(b.diskId),
      b.lba * BLOCK_SIZE_BYTES,
    );
    expectKind(await check(r.history, foreign), 'PHANTOM', b.diskId, b.lba, seed);

    const wrongEpoch = clone(r.images);
    encodeBlock(
      r.seed,
      { diskId: b.diskId, lba: b.lba, writeId: last.writeId, epoch: last.epoch + 1 },
      wrongEpoch.get(b.diskId),
      b.lba * BLOCK_SIZE_BYTES,
    );
    expectKind(await check(r.history, wrongEpoch), 'PHANTOM', b.diskId, b.lba, seed);
  }
});

test('LOST_FLUSHED_WRITE: a flushed or FUA write missing at the cut', async () => {
  for (let c = 0; c < CASES; c++) {
    const seed = BASE_SEED + 600 + c;
    const r = await run(seed, { flushProbability: 1 });
    const rng = new Rng(seed);
    const E = r.history.maxEpoch;
    const lastOps = r.history.ops.filter((op) => op.epoch === E && op.kind === 'write');
    if (lastOps.length === 0) continue;
    const op = rng.pick(lastOps);
    const lba = op.lba + rng.int(op.blocks);
    const versions = versionsOf(r.history, op.diskId, lba);
    const prev = versions[versions.length - 2];
    const images = clone(r.images);
    const img = images.get(op.diskId) as Buffer;
    if (prev && prev.kind === 'write') {
      encodeBlock(
        r.seed,
        { diskId: op.diskId, lba, writeId: prev.writeId, epoch: prev.epoch },
        img,
        lba * BLOCK_SIZE_BYTES,
      );
    } else {
      img.fill(0, lba * BLOCK_SIZE_BYTES, (lba + 1) * BLOCK_SIZE_BYTES);
    }
    const report = await check(r.history, images, 'recovery-point', r.endMs);
    assert.ok(report.violationCounts.LOST_FLUSHED_WRITE, `seed ${seed}\n${formatReport(report)}`);
    // Legal as a recovery point of a time before that epoch's flush was acknowledged.
    const flush = r.history.flushes.find((f) => f.epoch === E - 1 && f.diskId === op.diskId);
    const early = await check(r.history, images, 'recovery-point', (flush?.tAckMs ?? 0) + 1e-6);
    assert.ok(early.ok, `seed ${seed}\n${formatReport(early)}`);
    // And never ok for a planned failover.
    expectKind(await check(r.history, images, 'planned'), 'LOST_FLUSHED_WRITE', op.diskId, lba, seed);
    // Crash mode with the cut after the flush: lost.
    const crash = await check(r.history, images, 'crash', r.endMs);
    assert.ok(crash.violationCounts.LOST_FLUSHED_WRITE, `seed ${seed}\n${formatReport(crash)}`);
  }
});

test('FUA: a FUA write acknowledged before the cut is required even without a flush', async () => {
  for (let c = 0; c < CASES; c++) {
    const seed = BASE_SEED + 650 + c;
    const r = await run(seed, { flushProbability: 0, fuaProbability: 0.3 });
    const fuaOps = r.history.ops.filter((op) => op.fua && op.kind === 'write');
    const E = Math.max(...fuaOps.map((op) => op.epoch));
    const images = replayHistory(r.history, { throughEpoch: E - 1 });
    const firstFuaAckMs = Math.min(...fuaOps.filter((op) => op.epoch === E).map((op) => op.tAckMs as number));
    const report = await check(r.history, images, 'recovery-point', firstFuaAckMs);
    assert.ok(report.violationCounts.LOST_FLUSHED_WRITE, `seed ${seed}\n${formatReport(report)}`);
    const before = await check(r.history, images, 'recovery-point', firstFuaAckMs - 1e-6);
    assert.ok(before.ok, `seed ${seed}\n${formatReport(before)}`);
  }
});

test('multi-disk: epochs mixed across two disks are a HOLE on the older disk', async () => {
  for (let c = 0; c < CASES; c++) {
    const seed = BASE_SEED + 700 + c;
    const r = await run(seed);
    const rng = new Rng(seed);
    const E = r.history.maxEpoch;
    const k = Math.floor(E / 2) + rng.int(Math.floor(E / 4));
    const old = replayHistory(r.history, { throughEpoch: k, rng });
    const images = clone(r.images);
    images.set(0, old.get(0) as Buffer);
    // Each disk alone is a legal image of some epoch...
    assert.ok((await check(r.history, old, 'recovery-point')).ok, `seed ${seed}`);
    // ...but disk 0 at epoch k with disk 1 at epoch E is not one VM state.
    const report = await check(r.history, images);
    assert.ok(!report.ok && report.violationCounts.HOLE, `seed ${seed} k ${k}\n${formatReport(report)}`);
    assert.ok(
      report.violations.some((v) => v.kind === 'HOLE' && v.diskId === 0),
      `seed ${seed}\n${formatReport(report)}`,
    );
  }
});

test('initial pattern: never-written blocks must hold it; zeros there are a HOLE', async () => {
  const seed = BASE_SEED + 800;
  const r = await run(seed, { initialContent: 'pattern', maxEpochs: 150 });
  const images = replayHistory(r.history);
  assert.ok((await check(r.history, images)).ok, `seed ${seed}`);
  const untouched = [...Array(DISK_BYTES / BLOCK_SIZE_BYTES).keys()].find(
    (lba) => versionsOf(r.history, 1, lba).length === 0,
  );
  assert.ok(untouched !== undefined, `seed ${seed}: every block was written`);
  (images.get(1) as Buffer).fill(0, untouched * BLOCK_SIZE_BYTES, (untouched + 1) * BLOCK_SIZE_BYTES);
  expectKind(await check(r.history, images), 'HOLE', 1, untouched, seed);
});

test('freshness: lossEpochs and age', async () => {
  const seed = BASE_SEED + 900;
  const r = await run(seed, { flushProbability: 1 });
  const E = r.history.maxEpoch;
  const images = replayHistory(r.history, { throughEpoch: E - 10 });
  const report = await check(r.history, images);
  assert.ok(report.ok, `seed ${seed}`);
  const f = recoveryPointFreshness(r.history, report, {
    crashTimeMs: r.endMs,
    cutTimeMs: 100,
    failoverTimeMs: 350,
  });
  assert.equal(f.flushedEpochAtCrash, E);
  assert.equal(f.lossEpochs, E - (report.maxEpoch - 1));
  assert.equal(f.ageMs, 250);
});

test('an epoch made only of WRITE_ZEROES is invisible, yet the checker finds the E that explains the image', async () => {
  const rec = new HistoryRecorder({
    version: 1,
    seed: 1,
    blockSizeBytes: BLOCK_SIZE_BYTES,
    disks: [{ diskId: 0, sizeBytes: 4 * BLOCK_SIZE_BYTES }],
    initialContent: 'zero',
    startedMs: 0,
  });
  const op = (writeId: number, epoch: number, kind: 'write' | 'zero', lba: number): HistoryOp => ({
    writeId,
    epoch,
    diskId: 0,
    lba,
    blocks: 1,
    kind,
    fua: false,
    tSubmitMs: epoch * 10,
    tAckMs: epoch * 10 + 1,
  });
  rec.submitted([op(1, 1, 'write', 0), op(2, 1, 'write', 1)]);
  rec.submitted([op(3, 2, 'zero', 0)]);
  rec.flushed([{ diskId: 0, epoch: 2, tSubmitMs: 22, tAckMs: 23 }]);
  const image = Buffer.alloc(4 * BLOCK_SIZE_BYTES);
  encodeBlock(1, { diskId: 0, lba: 1, writeId: 2, epoch: 1 }, image, BLOCK_SIZE_BYTES);
  const report = await check(rec.history, new Map([[0, image]]), 'recovery-point', 100);
  assert.ok(report.ok, formatReport(report));
  assert.equal(report.observedMaxEpoch, 1);
  assert.equal(report.maxEpoch, 2);
  // Block 0 still holding write 1 after the flushed zeroing is a lost write.
  encodeBlock(1, { diskId: 0, lba: 0, writeId: 1, epoch: 1 }, image, 0);
  const lost = await check(rec.history, new Map([[0, image]]), 'recovery-point', 100);
  assert.ok(lost.violationCounts.LOST_FLUSHED_WRITE, formatReport(lost));
  // ...but fine for a point cut before that flush.
  assert.ok((await check(rec.history, new Map([[0, image]]), 'recovery-point', 22.5)).ok);
});

test('never throws on garbage: random bytes, random blocks, wrong sizes', async () => {
  const seed = BASE_SEED + 1000;
  const r = await run(seed, { maxEpochs: 40 });
  const rng = new Rng(seed);
  for (let i = 0; i < 30; i++) {
    const images = clone(r.images);
    const img = images.get(rng.int(2)) as Buffer;
    const lba = rng.int(DISK_BYTES / BLOCK_SIZE_BYTES);
    rng.fill(img.subarray(lba * BLOCK_SIZE_BYTES, (lba + 1) * BLOCK_SIZE_BYTES));
    const report = await check(r.history, images);
    assert.ok(
      !report.ok && report.violationCounts.CORRUPT === 1,
      `seed ${seed} case ${i}\n${formatReport(report)}`,
    );
  }
  // A short image reads as zeros past its end: never-written blocks are fine, written ones are holes.
  const short = new Map([...r.images].map(([k, v]) => [k, v.subarray(0, 8 * BLOCK_SIZE_BYTES)]));
  const report = await check(r.history, short);
  assert.ok(!report.ok && report.violationCounts.HOLE, formatReport(report));
  await assert.rejects(checkRecoveryPoint({ history: r.history, disks: [] }), /no image given for disk 0/);
});

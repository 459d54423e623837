import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seedFrom } from '../../domain/random.js';
import type { BlockDevice, BlockExtent } from '../../host/block-device/block-device.js';
import { checkRecoveryPoint, formatReport } from '../checker/recovery-point-checker.js';
import { BLOCK_SIZE_BYTES } from './block-format.js';
import { MemoryTarget } from './memory-target.js';
import { WorkloadGenerator, prefillInitialPattern } from './workload-generator.js';
import { blockDeviceTarget, fileTarget, type WorkloadTarget } from './workload-target.js';
import { monotonicNowMs } from './write-history.js';

const SEED = seedFrom(process.env.SECONDSITE_SEED, 99);
const MiB = 1 << 20;

test('epochs are ordered, ops of one epoch never overlap, the hot set gets most ops', async () => {
  const targets = [new MemoryTarget(4 * MiB, { seed: SEED }), new MemoryTarget(2 * MiB, { seed: SEED + 1 })];
  const gen = new WorkloadGenerator({
    seed: SEED,
    disks: targets.map((target, diskId) => ({ diskId, sizeBytes: target.sizeBytes, target })),
    maxEpochs: 300,
    queueDepth: 16,
    maxBlocksPerWrite: 64,
  });
  const result = await gen.run();
  assert.equal(result.stoppedBy, 'maxEpochs');
  const h = gen.history;
  assert.equal(h.maxEpoch, 300);
  let hot = 0;
  for (let e = 1; e <= 300; e++) {
    const ops = h.ops.filter((op) => op.epoch === e);
    assert.ok(ops.length >= 1 && ops.length <= 16, `seed ${SEED} epoch ${e}`);
    for (const a of ops) {
      for (const b of ops) {
        if (a !== b && a.diskId === b.diskId) {
          assert.ok(
            a.lba + a.blocks <= b.lba || b.lba + b.blocks <= a.lba,
            `seed ${SEED}: overlap in epoch ${e}`,
          );
        }
      }
    }
    const next = h.ops.filter((op) => op.epoch === e + 1);
    const lastAck = Math.max(...ops.map((op) => op.tAckMs as number));
    for (const n of next)
      assert.ok(n.tSubmitMs >= lastAck, `seed ${SEED}: epoch ${e + 1} submitted before ${e} acked`);
  }
  for (const op of h.ops) {
    const size = op.diskId === 0 ? 4 * MiB : 2 * MiB;
    if (op.lba < (0.2 * size) / BLOCK_SIZE_BYTES) hot++;
    assert.ok(op.lba + op.blocks <= size / BLOCK_SIZE_BYTES);
  }
  assert.ok(hot / h.ops.length > 0.6, `seed ${SEED}: hot share ${hot / h.ops.length}`);
  assert.ok(
    h.ops.some((op) => op.blocks > 8) && h.ops.some((op) => op.fua) && h.ops.some((op) => op.kind === 'trim'),
  );
  assert.ok(h.flushes.length > 0 && h.flushes.every((f) => f.tAckMs !== null));
  const report = await checkRecoveryPoint({
    history: h,
    disks: targets.map((t, diskId) => ({ diskId, buffer: t.image })),
    cutTimeMs: monotonicNowMs(),
  });
  assert.ok(report.ok, formatReport(report));
});

test('rate limit, duration and stop()', async () => {
  const target = new MemoryTarget(MiB, { seed: SEED });
  const t0 = monotonicNowMs();
  const limited = new WorkloadGenerator({
    seed: SEED,
    disks: [{ diskId: 0, sizeBytes: MiB, target }],
    maxOps: 60,
    opsPerSecond: 200,
  });
  const r1 = await limited.run();
  assert.equal(r1.stoppedBy, 'maxOps');
  assert.equal(r1.ops, 60);
  assert.ok(monotonicNowMs() - t0 >= 250, `60 ops at 200/s took ${monotonicNowMs() - t0} ms`);

  const byBytes = new WorkloadGenerator({
    seed: SEED,
    disks: [{ diskId: 0, sizeBytes: MiB, target }],
    durationMs: 300,
    bytesPerSecond: 400 * 1024,
  });
  const t1 = monotonicNowMs();
  const r2 = await byBytes.run();
  const elapsedSeconds = (monotonicNowMs() - t1) / 1000;
  assert.equal(r2.stoppedBy, 'duration');
  // Pacing never lets the bytes issued by time t exceed rate * t (timers may fire ~1 ms early).
  assert.ok(r2.bytesWritten > 0);
  assert.ok(
    r2.bytesWritten <= 400 * 1024 * (elapsedSeconds + 0.01),
    `wrote ${r2.bytesWritten} bytes in ${elapsedSeconds} s at 400 KiB/s`,
  );

  const stoppable = new WorkloadGenerator({ seed: SEED, disks: [{ diskId: 0, sizeBytes: MiB, target }] });
  setTimeout(() => stoppable.stop(), 50);
  assert.equal((await stoppable.run()).stoppedBy, 'stop');
  const ac = new AbortController();
  const aborted = new WorkloadGenerator({
    seed: SEED,
    disks: [{ diskId: 0, sizeBytes: MiB, target }],
    signal: ac.signal,
  });
  setTimeout(() => ac.abort(), 50);
  assert.equal((await aborted.run()).stoppedBy, 'stop');
});

test('a failing target stops the run with the error recorded, never a throw', async () => {
  const inner = new MemoryTarget(MiB, { seed: SEED });
  let writes = 0;
  const target: WorkloadTarget = {
    write: async (o, d, f) => {
      if (++writes === 50) throw new Error('EIO on write 50');
      await inner.write(o, d);
      void f;
    },
    flush: () => inner.flush(),
    writeZeroes: (o, l) => inner.writeZeroes(o, l),
    trim: (o, l) => inner.trim(o, l),
  };
  const gen = new WorkloadGenerator({
    seed: SEED,
    disks: [{ diskId: 0, sizeBytes: MiB, target }],
    maxEpochs: 1000,
  });
  const result = await gen.run();
  assert.equal(result.stoppedBy, 'error');
  assert.match(String(result.error), /EIO on write 50/);
  assert.equal(gen.history.ops.filter((op) => op.error).length, 1);
  const report = await checkRecoveryPoint({
    history: gen.history,
    disks: [{ diskId: 0, buffer: inner.image }],
  });
  assert.ok(report.ok, formatReport(report));
});

test('runs over a BlockDevice and over a file; the file image checks from its path', async () => {
  const store = Buffer.alloc(MiB);
  let flushes = 0;
  const device: BlockDevice = {
    sizeBytes: MiB,
    readOnly: false,
    read: (o, l) => Promise.resolve(Buffer.from(store.subarray(o, o + l))),
    write: (o, d) => Promise.resolve(void d.copy(store, o)),
    flush: () => Promise.resolve(void flushes++),
    trim: () => Promise.resolve(),
    writeZeroes: (o, l) => Promise.resolve(void store.fill(0, o, o + l)),
    extents: (o, l): Promise<BlockExtent[]> =>
      Promise.resolve([{ offsetBytes: o, lengthBytes: l, hole: false, zero: false }]),
    close: () => Promise.resolve(),
  };
  const gen = new WorkloadGenerator({
    seed: SEED,
    disks: [{ diskId: 3, sizeBytes: MiB, target: blockDeviceTarget(device) }],
    maxEpochs: 100,
    flushProbability: 0.5,
  });
  await gen.run();
  assert.ok(flushes > 0);
  const r1 = await checkRecoveryPoint({
    history: gen.history,
    disks: [{ diskId: 3, device }],
    cutTimeMs: monotonicNowMs(),
  });
  assert.ok(r1.ok, formatReport(r1));

  const dir = await mkdtemp(join(tmpdir(), 'secondsite-workload-'));
  try {
    const path = join(dir, 'disk.img');
    const ft = await fileTarget(path);
    await prefillInitialPattern(SEED, { diskId: 0, sizeBytes: MiB, target: ft });
    const fileGen = new WorkloadGenerator({
      seed: SEED,
      disks: [{ diskId: 0, sizeBytes: MiB, target: ft }],
      maxEpochs: 100,
      initialContent: 'pattern',
    });
    await fileGen.run();
    await ft.close();
    const r2 = await checkRecoveryPoint({
      history: fileGen.history,
      disks: [{ diskId: 0, path }],
      mode: 'planned',
    });
    assert.ok(r2.ok, formatReport(r2));
    assert.ok(r2.stats.zeroBlocks < 256, 'prefilled image has initial-pattern blocks, not zeros');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/**
 * The seeded workload generator of data-safety.md 2.5: writes self-describing blocks to the disks of one
 * VM in VM-global epochs and records what it did, so a checker can later decide whether any image of
 * those disks is a legal state.
 *
 * Epoch e (1, 2, ...):
 *   1. choose 1..queueDepth ops over all disks, on DISTINCT blocks (no two ops of an epoch overlap);
 *      `hotProbability` of them start in the hot set (the first `hotSetFraction` of each disk) so
 *      overwrites are frequent; some span 2..maxBlocksPerWrite blocks; some carry FUA; a few are
 *      WRITE_ZEROES or TRIM instead of data;
 *   2. record their submission (history file first), then issue them all concurrently;
 *   3. the epoch ends when every op is acknowledged: happens-before is exactly epoch order;
 *   4. with probability `flushProbability`, flush every disk (concurrently) and record each flush as
 *      covering epoch e.
 * Stops at `maxEpochs`, `maxOps`, `durationMs`, `stop()`, `signal` abort, or the first failed op or
 * flush (the epoch in progress always completes first). `run()` never throws for target failures: it
 * resolves with `stoppedBy: 'error'` and the error.
 *
 * Usage:
 *   const gen = new WorkloadGenerator({ seed, disks: [{ diskId: 0, sizeBytes, target }], maxEpochs: 200 });
 *   const result = await gen.run();
 *   const report = await checkRecoveryPoint({ history: gen.history, disks: [...] });
 */
import { Rng } from '../../domain/random.js';
import { SecondsiteError } from '../../domain/errors.js';
import { BLOCK_SIZE_BYTES, encodeInitialBlock, encodeWrite } from './block-format.js';
import type { WorkloadTarget } from './workload-target.js';
import {
  HistoryRecorder,
  monotonicNowMs,
  type HistoryFlush,
  type HistoryOp,
  type OpKind,
  type WriteHistory,
} from './write-history.js';

export interface WorkloadDisk {
  /** Stamped into every block; the checker matches it against the disk it reads. */
  diskId: number;
  /** Multiple of BLOCK_SIZE_BYTES. */
  sizeBytes: number;
  target: WorkloadTarget;
}

export interface WorkloadOptions {
  seed: number;
  disks: WorkloadDisk[];
  /** Max concurrent ops per epoch (default 8). */
  queueDepth?: number;
  /** Largest multi-block op in blocks (default 16; 8192 = 32 MiB). */
  maxBlocksPerWrite?: number;
  /** Probability that an op spans more than one block (default 0.2). */
  multiBlockProbability?: number;
  fuaProbability?: number;
  /** Probability of a flush after an epoch (default 0.3). */
  flushProbability?: number;
  /** Probability that an op is WRITE_ZEROES (default 0.03) / TRIM (default 0.03). */
  zeroProbability?: number;
  trimProbability?: number;
  /** Fraction of each disk that is hot (default 0.2) and the share of ops that start there (default 0.8). */
  hotSetFraction?: number;
  hotProbability?: number;
  /** Rate caps (optional): ops per second and bytes per second, enforced at epoch granularity. */
  opsPerSecond?: number;
  bytesPerSecond?: number;
  maxEpochs?: number;
  maxOps?: number;
  durationMs?: number;
  signal?: AbortSignal;
  /** JSON-lines history file (see write-history.ts), for a parent process to read after a crash. */
  historyFile?: string;
  /** fsync the history file per batch (only for machine-level power loss). */
  historyFsync?: boolean;
  /** Whether the disks were pre-filled with `prefillInitialPattern` (default 'zero'). */
  initialContent?: 'zero' | 'pattern';
  /** Called after each epoch (and its flush) completes. */
  onEpoch?: (epoch: number) => void;
}

export interface WorkloadResult {
  epochs: number;
  ops: number;
  bytesWritten: number;
  flushes: number;
  stoppedBy: 'maxEpochs' | 'maxOps' | 'duration' | 'stop' | 'error';
  error?: unknown;
}

export class WorkloadGenerator {
  readonly history: WriteHistory;
  private readonly recorder: HistoryRecorder;
  private readonly rng: Rng;
  private stopRequested = false;
  private nextWriteId = 1;
  private readonly o: Required<
    Omit<
      WorkloadOptions,
      | 'opsPerSecond'
      | 'bytesPerSecond'
      | 'maxEpochs'
      | 'maxOps'
      | 'durationMs'
      | 'signal'
      | 'historyFile'
      | 'onEpoch'
    >
  >;

  constructor(private readonly options: WorkloadOptions) {
    if (options.disks.length === 0) {
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'a workload needs at least one disk');
    }
    for (const d of options.disks) {
      if (d.sizeBytes <= 0 || d.sizeBytes % BLOCK_SIZE_BYTES !== 0) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `disk ${d.diskId}: sizeBytes ${d.sizeBytes} must be a positive multiple of ${BLOCK_SIZE_BYTES}`,
        );
      }
    }
    if (new Set(options.disks.map((d) => d.diskId)).size !== options.disks.length) {
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'diskIds of a workload must be distinct');
    }
    this.o = {
      seed: options.seed >>> 0,
      disks: options.disks,
      queueDepth: options.queueDepth ?? 8,
      maxBlocksPerWrite: options.maxBlocksPerWrite ?? 16,
      multiBlockProbability: options.multiBlockProbability ?? 0.2,
      fuaProbability: options.fuaProbability ?? 0.1,
      flushProbability: options.flushProbability ?? 0.3,
      zeroProbability: options.zeroProbability ?? 0.03,
      trimProbability: options.trimProbability ?? 0.03,
      hotSetFraction: options.hotSetFraction ?? 0.2,
      hotProbability: options.hotProbability ?? 0.8,
      historyFsync: options.historyFsync ?? false,
      initialContent: options.initialContent ?? 'zero',
    };
    this.rng = new Rng(this.o.seed);
    this.recorder = new HistoryRecorder(
      {
        version: 1,
        seed: this.o.seed,
        blockSizeBytes: BLOCK_SIZE_BYTES,
        disks: options.disks.map((d) => ({ diskId: d.diskId, sizeBytes: d.sizeBytes })),
        initialContent: this.o.initialContent,
        startedMs: monotonicNowMs(),
      },
      {
        ...(options.historyFile !== undefined ? { filePath: options.historyFile } : {}),
        fsync: this.o.historyFsync,
      },
    );
    this.history = this.recorder.history;
  }

  /** Asks the generator to stop after the epoch in progress. */
  stop(): void {
    this.stopRequested = true;
  }

  async run(): Promise<WorkloadResult> {
    const startMs = monotonicNowMs();
    const result: WorkloadResult = { epochs: 0, ops: 0, bytesWritten: 0, flushes: 0, stoppedBy: 'stop' };
    let budgetOps = 0;
    let budgetBytes = 0;
    try {
      for (let epoch = 1; ; epoch++) {
        const stopReason = this.shouldStop(result, startMs);
        if (stopReason) {
          result.stoppedBy = stopReason;
          break;
        }
        const ops = this.planEpoch(epoch, result.ops);
        budgetOps += ops.length;
        budgetBytes += ops.reduce((sum, op) => sum + op.blocks * BLOCK_SIZE_BYTES, 0);
        await this.pace(startMs, budgetOps, budgetBytes);

        const tSubmitMs = monotonicNowMs();
        for (const op of ops) op.tSubmitMs = tSubmitMs;
        this.recorder.submitted(ops);
        const errors = await Promise.all(ops.map((op) => this.issue(op)));
        this.recorder.completed(ops);
        result.epochs = epoch;
        result.ops += ops.length;
        for (const op of ops)
          if (op.kind === 'write' && op.tAckMs !== null) result.bytesWritten += op.blocks * BLOCK_SIZE_BYTES;
        const firstError = errors.find((e) => e !== undefined);
        if (firstError !== undefined) {
          result.stoppedBy = 'error';
          result.error = firstError;
          break;
        }
        if (this.rng.chance(this.o.flushProbability)) {
          const flushError = await this.flushAll(epoch);
          result.flushes++;
          if (flushError !== undefined) {
            result.stoppedBy = 'error';
            result.error = flushError;
            break;
          }
        }
        this.options.onEpoch?.(epoch);
      }
    } finally {
      this.recorder.close();
    }
    return result;
  }

  private shouldStop(result: WorkloadResult, startMs: number): WorkloadResult['stoppedBy'] | null {
    if (this.stopRequested || this.options.signal?.aborted) return 'stop';
    if (this.options.maxEpochs !== undefined && result.epochs >= this.options.maxEpochs) return 'maxEpochs';
    if (this.options.maxOps !== undefined && result.ops >= this.options.maxOps) return 'maxOps';
    if (this.options.durationMs !== undefined && monotonicNowMs() - startMs >= this.options.durationMs)
      return 'duration';
    return null;
  }

  private async pace(startMs: number, ops: number, bytes: number): Promise<void> {
    let dueMs = 0;
    if (this.options.opsPerSecond) dueMs = Math.max(dueMs, (ops / this.options.opsPerSecond) * 1000);
    if (this.options.bytesPerSecond) dueMs = Math.max(dueMs, (bytes / this.options.bytesPerSecond) * 1000);
    const waitMs = startMs + dueMs - monotonicNowMs();
    if (waitMs > 1) await new Promise<void>((resolve) => setTimeout(resolve, waitMs));
  }

  private planEpoch(epoch: number, opsSoFar: number): HistoryOp[] {
    let count = 1 + this.rng.int(this.o.queueDepth);
    if (this.options.maxOps !== undefined) count = Math.min(count, this.options.maxOps - opsSoFar);
    const used = new Map<number, Array<[number, number]>>();
    const ops: HistoryOp[] = [];
    for (let i = 0; i < count; i++) {
      const disk = this.rng.pick(this.o.disks);
      const diskBlocks = disk.sizeBytes / BLOCK_SIZE_BYTES;
      const r = this.rng.next();
      const kind: OpKind =
        r < this.o.zeroProbability
          ? 'zero'
          : r < this.o.zeroProbability + this.o.trimProbability
            ? 'trim'
            : 'write';
      let blocks = 1;
      if (this.o.maxBlocksPerWrite > 1 && this.rng.chance(this.o.multiBlockProbability)) {
        // Skewed towards small: 2..max, log-uniform.
        const span = Math.log(this.o.maxBlocksPerWrite / 2);
        blocks = Math.min(this.o.maxBlocksPerWrite, Math.floor(2 * Math.exp(this.rng.next() * span)));
      }
      blocks = Math.min(blocks, diskBlocks);
      const ranges = used.get(disk.diskId) ?? [];
      for (let attempt = 0; attempt < 8; attempt++) {
        const hotBlocks = Math.max(1, Math.floor(diskBlocks * this.o.hotSetFraction));
        let lba = this.rng.chance(this.o.hotProbability) ? this.rng.int(hotBlocks) : this.rng.int(diskBlocks);
        lba = Math.min(lba, diskBlocks - blocks);
        if (ranges.some(([a, b]) => lba < b && a < lba + blocks)) continue;
        ranges.push([lba, lba + blocks]);
        used.set(disk.diskId, ranges);
        ops.push({
          writeId: this.nextWriteId++,
          epoch,
          diskId: disk.diskId,
          lba,
          blocks,
          kind,
          fua: this.rng.chance(this.o.fuaProbability),
          tSubmitMs: 0,
          tAckMs: null,
        });
        break;
      }
    }
    return ops;
  }

  /** Issues one op; records its ack time or error on the op; returns the error, if any. */
  private async issue(op: HistoryOp): Promise<unknown> {
    const disk = this.o.disks.find((d) => d.diskId === op.diskId) as WorkloadDisk;
    const offsetBytes = op.lba * BLOCK_SIZE_BYTES;
    const lengthBytes = op.blocks * BLOCK_SIZE_BYTES;
    try {
      if (op.kind === 'write') {
        const data = encodeWrite(this.o.seed, op);
        await disk.target.write(offsetBytes, data, { fua: op.fua });
      } else if (op.kind === 'zero') {
        await disk.target.writeZeroes(offsetBytes, lengthBytes, { fua: op.fua });
      } else {
        await disk.target.trim(offsetBytes, lengthBytes, { fua: op.fua });
      }
      op.tAckMs = monotonicNowMs();
      return undefined;
    } catch (error) {
      op.error = error instanceof Error ? error.message : String(error);
      return error;
    }
  }

  private async flushAll(epoch: number): Promise<unknown> {
    const flushes: HistoryFlush[] = [];
    const errors = await Promise.all(
      this.o.disks.map(async (disk) => {
        const flush: HistoryFlush = { diskId: disk.diskId, epoch, tSubmitMs: monotonicNowMs(), tAckMs: null };
        flushes.push(flush);
        try {
          await disk.target.flush();
          flush.tAckMs = monotonicNowMs();
          return undefined;
        } catch (error) {
          flush.error = error instanceof Error ? error.message : String(error);
          return error;
        }
      }),
    );
    this.recorder.flushed(flushes);
    return errors.find((e) => e !== undefined);
  }
}

/**
 * Writes the initial pattern (writeId 0, epoch 0) over every block of a disk and flushes, for runs with
 * `initialContent: 'pattern'` (a checker then tells "never written" from "zeroed").
 */
export async function prefillInitialPattern(
  seed: number,
  disk: WorkloadDisk,
  chunkBlocks = 256,
): Promise<void> {
  const blocks = disk.sizeBytes / BLOCK_SIZE_BYTES;
  for (let lba = 0; lba < blocks; lba += chunkBlocks) {
    const n = Math.min(chunkBlocks, blocks - lba);
    const buf = Buffer.allocUnsafe(n * BLOCK_SIZE_BYTES);
    for (let i = 0; i < n; i++)
      encodeInitialBlock(seed >>> 0, disk.diskId, lba + i, buf, i * BLOCK_SIZE_BYTES);
    await disk.target.write(lba * BLOCK_SIZE_BYTES, buf, { fua: false });
  }
  await disk.target.flush();
}

/**
 * The write history, recorded harness-side (outside the system under test), data-safety.md 2.5 step 3.
 *
 *   - every operation (data write, WRITE_ZEROES, TRIM): writeId, epoch, disk, lba range, kind, fua,
 *     tSubmitMs, tAckMs (null if never acknowledged, e.g. in flight at a crash, or failed);
 *   - every flush: disk, the epoch it covers (all writes of epochs <= epoch were acknowledged before it
 *     was submitted), tSubmitMs, tAckMs.
 *   - `flushedEpoch(t)`: the highest epoch whose covering flush was acknowledged at or before t.
 *
 * Times are monotonic milliseconds from `monotonicNowMs()` (CLOCK_MONOTONIC, the same across processes
 * of one machine), so a crash-test parent can compare a child's history with its own kill time.
 *
 * File format: JSON lines. Line 1 is the header {"t":"header",...}; then per epoch one "s" line per
 * submitted op (written and flushed to the kernel BEFORE the ops are issued), one "a" line per ack
 * (after the epoch completes) and one "f" line per acknowledged flush. A writer killed at any moment
 * leaves a prefix of lines plus maybe a torn last line, which `readHistoryFile` ignores. The history
 * therefore never claims more than happened: a lost ack line only makes the checker more lenient.
 */
import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { SecondsiteError } from '../../domain/errors.js';

export type OpKind = 'write' | 'zero' | 'trim';

export interface HistoryOp {
  writeId: number;
  epoch: number;
  diskId: number;
  /** First block (BLOCK_SIZE_BYTES units). */
  lba: number;
  blocks: number;
  kind: OpKind;
  fua: boolean;
  tSubmitMs: number;
  /** null: not acknowledged (in flight when the history ended, or failed). */
  tAckMs: number | null;
  /** Set when the target rejected the op. */
  error?: string;
}

export interface HistoryFlush {
  diskId: number;
  /** Covers every op of epochs <= epoch on this disk. */
  epoch: number;
  tSubmitMs: number;
  tAckMs: number | null;
  error?: string;
}

export interface HistoryDisk {
  diskId: number;
  sizeBytes: number;
}

export interface HistoryHeader {
  version: 1;
  seed: number;
  blockSizeBytes: number;
  disks: HistoryDisk[];
  /** 'zero': never-written blocks read as zeros; 'pattern': pre-filled with encodeInitialBlock. */
  initialContent: 'zero' | 'pattern';
  startedMs: number;
}

/** CLOCK_MONOTONIC in milliseconds, comparable between processes on one machine. */
export function monotonicNowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** An in-memory history. Build one with `HistoryRecorder` or `readHistoryFile`. */
export class WriteHistory {
  readonly ops: HistoryOp[] = [];
  readonly flushes: HistoryFlush[] = [];
  private readonly byId = new Map<number, HistoryOp>();

  constructor(readonly header: HistoryHeader) {}

  get seed(): number {
    return this.header.seed;
  }

  addOp(op: HistoryOp): void {
    if (this.byId.has(op.writeId)) {
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `writeId ${op.writeId} recorded twice`);
    }
    this.ops.push(op);
    this.byId.set(op.writeId, op);
  }

  op(writeId: number): HistoryOp | undefined {
    return this.byId.get(writeId);
  }

  /** Highest epoch of any op, 0 if none. */
  get maxEpoch(): number {
    let e = 0;
    for (const op of this.ops) if (op.epoch > e) e = op.epoch;
    return e;
  }

  /**
   * FlushedEpoch(t) for one disk, or (without diskId) for the whole VM: the lowest over its disks, since
   * a VM-wide epoch is flushed only when every disk's flush covering it was acknowledged. 0 if none.
   */
  flushedEpoch(tMs: number, diskId?: number): number {
    const disks = diskId === undefined ? this.header.disks.map((d) => d.diskId) : [diskId];
    let vm = Infinity;
    for (const d of disks) {
      let e = 0;
      for (const f of this.flushes) {
        if (f.diskId === d && f.tAckMs !== null && f.tAckMs <= tMs && f.epoch > e) e = f.epoch;
      }
      vm = Math.min(vm, e);
    }
    return vm === Infinity ? 0 : vm;
  }

  /** The serialized form (what `HistoryRecorder` writes to its file). */
  toJsonLines(): string {
    const lines = [JSON.stringify({ t: 'header', ...this.header })];
    for (const op of this.ops) lines.push(JSON.stringify(submitLine(op)));
    for (const op of this.ops) if (op.tAckMs !== null || op.error) lines.push(JSON.stringify(ackLine(op)));
    for (const f of this.flushes) lines.push(JSON.stringify(flushLine(f)));
    return lines.join('\n') + '\n';
  }
}

function submitLine(op: HistoryOp): Record<string, unknown> {
  return {
    t: 's',
    id: op.writeId,
    e: op.epoch,
    d: op.diskId,
    lba: op.lba,
    n: op.blocks,
    k: op.kind,
    fua: op.fua,
    ts: op.tSubmitMs,
  };
}

function ackLine(op: HistoryOp): Record<string, unknown> {
  return op.error ? { t: 'a', id: op.writeId, err: op.error } : { t: 'a', id: op.writeId, ta: op.tAckMs };
}

function flushLine(f: HistoryFlush): Record<string, unknown> {
  return {
    t: 'f',
    d: f.diskId,
    e: f.epoch,
    ts: f.tSubmitMs,
    ta: f.tAckMs,
    ...(f.error ? { err: f.error } : {}),
  };
}

/**
 * Records a history in memory and, when `filePath` is given, appends it to a JSON-lines file with one
 * synchronous write per batch (so a SIGKILL loses at most the batch being written). `fsync: true`
 * also fsyncs each batch (only needed if the machine itself may lose power).
 */
export class HistoryRecorder {
  readonly history: WriteHistory;
  private fd: number | null = null;

  constructor(
    header: HistoryHeader,
    private readonly options: { filePath?: string; fsync?: boolean } = {},
  ) {
    this.history = new WriteHistory(header);
    if (options.filePath !== undefined) {
      this.fd = openSync(options.filePath, 'w');
      this.append([{ t: 'header', ...header }]);
    }
  }

  /** Call before issuing the ops (their tSubmitMs must already be set, at or before the real submit). */
  submitted(ops: HistoryOp[]): void {
    for (const op of ops) this.history.addOp(op);
    this.append(ops.map(submitLine));
  }

  /** Call after the ops completed (tAckMs or error set on the same objects passed to `submitted`). */
  completed(ops: HistoryOp[]): void {
    this.append(ops.filter((op) => op.tAckMs !== null || op.error).map(ackLine));
  }

  /** Records flushes (acknowledged or failed). */
  flushed(flushes: HistoryFlush[]): void {
    this.history.flushes.push(...flushes);
    this.append(flushes.map(flushLine));
  }

  close(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }

  private append(lines: Record<string, unknown>[]): void {
    if (this.fd === null || lines.length === 0) return;
    const text = lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
    const buf = Buffer.from(text);
    let done = 0;
    while (done < buf.length) done += writeSync(this.fd, buf, done, buf.length - done);
    if (this.options.fsync) fsyncSync(this.fd);
  }
}

/** Parses a history file written by `HistoryRecorder`, tolerating a torn last line. */
export function readHistoryFile(path: string): WriteHistory {
  return parseHistory(readFileSync(path, 'utf8'), path);
}

/** Parses JSON-lines history text; a malformed LAST line is ignored (torn by a crash), any other throws. */
export function parseHistory(text: string, source = 'history'): WriteHistory {
  const lines = text.split('\n');
  const complete = text.endsWith('\n');
  let history: WriteHistory | null = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '') continue;
    const isLast = i === lines.length - 1 || (i === lines.length - 2 && complete);
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      if (isLast) break;
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `${source}: line ${i + 1} is not JSON`);
    }
    if (rec.t === 'header') {
      const { t: _t, ...header } = rec;
      history = new WriteHistory(header as unknown as HistoryHeader);
      continue;
    }
    if (!history) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `${source}: no header line before line ${i + 1}`,
      );
    }
    if (rec.t === 's') {
      history.addOp({
        writeId: rec.id as number,
        epoch: rec.e as number,
        diskId: rec.d as number,
        lba: rec.lba as number,
        blocks: rec.n as number,
        kind: rec.k as OpKind,
        fua: rec.fua as boolean,
        tSubmitMs: rec.ts as number,
        tAckMs: null,
      });
    } else if (rec.t === 'a') {
      const op = history.op(rec.id as number);
      if (!op)
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `${source}: ack of unknown op ${String(rec.id)}`,
        );
      if (typeof rec.err === 'string') op.error = rec.err;
      else op.tAckMs = rec.ta as number;
    } else if (rec.t === 'f') {
      history.flushes.push({
        diskId: rec.d as number,
        epoch: rec.e as number,
        tSubmitMs: rec.ts as number,
        tAckMs: (rec.ta as number | null) ?? null,
        ...(typeof rec.err === 'string' ? { error: rec.err } : {}),
      });
    }
  }
  if (!history)
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `${source}: empty history (no header line)`);
  return history;
}

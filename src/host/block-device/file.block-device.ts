/**
 * `FileBlockDevice`: a disk as a sparse raw image file, through the `Storage` shim. This is the NBD
 * write path, so it does the least it can: a write is one pwrite (plus an fdatasync with FUA), a flush
 * is one fdatasync (concurrent flushes and FUA writes share them: group commit), trim and zeroing punch
 * holes.
 *
 * Small writes (up to `syncWriteMaxBytes`, opt-in; SYNC_WRITE_MAX_BYTES is the measured value; the host
 * agent's disks opt in) go synchronously on the event loop when the file offers `writeNow` and no other
 * write of the device is in flight or queued: a buffered pwrite of a few KiB into the page cache takes
 * microseconds, while the thread-pool round trip costs two thread wake-ups, which is most of a
 * queue-depth-1 write's latency. With writes in flight, a synchronous pwrite would wait on the event
 * loop for the file's inode lock behind them, and the scattered batches below serve depth better. Ext4 cannot
 * tell in advance whether a buffered write would block (no RWF_NOWAIT for buffered writes), so a
 * synchronous write slower than SYNC_WRITE_SLOW_MS (dirty-page throttling, journal waits) turns the
 * fast path off for SYNC_WRITE_BACKOFF_MS: the event loop stalls at most once per back-off period.
 * Larger writes stay on the thread pool, where they overlap with reading the next request, but through
 * a queue: at most MAX_WRITE_BATCHES_IN_FLIGHT pwritev calls run at once, and writes queued behind them
 * that continue one another (a sequential stream) leave as one pwritev; queued writes that do not (random
 * writes at depth) leave as one scattered batch (`StorageFile.writeScattered`, the native addon's
 * pwriteBatch: one pwrite each, one thread-pool hand-off for all). At random 4 KiB writes, queue depth
 * 32, the hand-off per write was ~37 % of the event loop (`writeBuffer` in the profile). Several thread-pool threads
 * writing one file only contend (the inode lock, libuv's queue mutex, wake-ups on few cores): measured
 * on 2 vCPUs, 64 KiB writes at queue depth 8 cost the event loop 3x more in the thread-pool hand-off
 * with 4 pool threads than with 1. Nothing is ordered by the queue that NBD orders: each write's promise
 * settles when its own bytes were written (or failed), FUA and flush work as before.
 *
 * Reads of at least SPARSE_READ_MIN_BYTES consult the allocation map first and never read holes from
 * the file (they are zero-filled in memory); smaller reads are one pread, where the kernel zero-fills
 * holes itself without touching the disk, which is cheaper than two extra lseeks. Small reads queue like
 * writes: at most MAX_READ_BATCHES_IN_FLIGHT at once, the ones queued behind them leave as one scattered
 * batch (`StorageFile.readScattered`, the native preadBatch).
 */
import { SecondsiteError } from '../../domain/errors.js';
import { GiB, KiB, MiB } from '../../domain/units.js';
import type { StorageFile } from '../storage/storage.js';
import type { BlockDevice, BlockExtent, WriteFlags, ZeroFlags } from './block-device.js';

/** Reads this large or larger skip holes using the allocation map. */
export const SPARSE_READ_MIN_BYTES = 256 * KiB;
/** extents() looks at most this far per call (the caller asks again for the rest). */
const EXTENTS_MAX_SPAN_BYTES = 4 * GiB;
const ZERO_CHUNK_BYTES = MiB;
/** The size up to which synchronous writes paid off (see the design note above and `syncWriteMaxBytes`). */
export const SYNC_WRITE_MAX_BYTES = 16 * KiB;
/** A synchronous write slower than this turns the synchronous path off for a while. */
export const SYNC_WRITE_SLOW_MS = 2;
export const SYNC_WRITE_BACKOFF_MS = 1000;
/** pwritev calls of one device in flight at once (the rest wait in the device's write queue). */
export const MAX_WRITE_BATCHES_IN_FLIGHT = 2;
/** Small-read batches of one device in flight at once (the rest wait in the device's read queue). */
export const MAX_READ_BATCHES_IN_FLIGHT = 2;
/** One batch takes at most this many queued writes (or reads), and stops adding at this many bytes. */
const MAX_BATCH_WRITES = 64;
const MAX_BATCH_BYTES = 8 * MiB;

/** A queued write, or a queued small read (`data` is the buffer to fill). */
interface QueuedIo {
  readonly offsetBytes: number;
  readonly data: Buffer;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}
let zeroChunk: Buffer | undefined;

export interface FileBlockDeviceOptions {
  readOnly?: boolean;
  /** The disk size; defaults to the file's size. */
  sizeBytes?: number;
  /**
   * Largest write done synchronously (when the file offers `writeNow` and no write of the device is in
   * flight or queued); default 0: off. SYNC_WRITE_MAX_BYTES is the measured value (4k QD1 1.7x
   * qemu-nbd), which the host agent's disk store uses.
   */
  syncWriteMaxBytes?: number;
}

export class FileBlockDevice implements BlockDevice {
  private syncRunning: Promise<void> | undefined;
  private syncQueued: Promise<void> | undefined;
  /** performance.now() before which small writes use the thread pool (after a slow synchronous one). */
  private syncWritesOffUntilMs = 0;
  private slowSyncWrites = 0;
  private readonly writeQueue: QueuedIo[] = [];
  private batchesInFlight = 0;
  private batchedWrites = 0;
  private scatteredWrites = 0;
  private readonly readQueue: QueuedIo[] = [];
  private readBatchesInFlight = 0;
  private scatteredReads = 0;

  private constructor(
    private readonly file: StorageFile,
    readonly sizeBytes: number,
    readonly readOnly: boolean,
    private readonly syncWriteMaxBytes: number,
  ) {}

  /** Serves `file` as a block device; the device owns the file and closes it on close(). */
  static async open(file: StorageFile, options: FileBlockDeviceOptions = {}): Promise<FileBlockDevice> {
    const sizeBytes = options.sizeBytes ?? (await file.sizeBytes());
    const syncMax = file.writeNow === undefined ? 0 : (options.syncWriteMaxBytes ?? 0);
    return new FileBlockDevice(file, sizeBytes, options.readOnly ?? false, syncMax);
  }

  async read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(lengthBytes);
    if (lengthBytes < SPARSE_READ_MIN_BYTES) {
      if (this.file.readScattered === undefined) await this.readInto(buf, 0, lengthBytes, offsetBytes);
      else await this.enqueueRead(buf, offsetBytes);
      return buf;
    }
    const map = await this.file.allocation(offsetBytes, lengthBytes);
    for (const extent of map) {
      const at = extent.offsetBytes - offsetBytes;
      if (extent.data) await this.readInto(buf, at, extent.lengthBytes, extent.offsetBytes);
      else buf.fill(0, at, at + extent.lengthBytes);
    }
    return buf;
  }

  private async readInto(
    buf: Buffer,
    bufOffset: number,
    lengthBytes: number,
    positionBytes: number,
  ): Promise<void> {
    const n = await this.file.read(buf, bufOffset, lengthBytes, positionBytes);
    if (n < lengthBytes) buf.fill(0, bufOffset + n, bufOffset + lengthBytes);
  }

  write(offsetBytes: number, data: Buffer, flags: WriteFlags): Promise<void> {
    if (
      data.length <= this.syncWriteMaxBytes &&
      !this.readOnly &&
      this.batchesInFlight === 0 &&
      this.writeQueue.length === 0
    ) {
      const startMs = performance.now();
      if (startMs >= this.syncWritesOffUntilMs) {
        try {
          (this.file.writeNow as NonNullable<StorageFile['writeNow']>)(data, 0, data.length, offsetBytes);
        } catch (e) {
          return Promise.reject(e instanceof Error ? e : new Error(String(e)));
        }
        const endMs = performance.now();
        if (endMs - startMs > SYNC_WRITE_SLOW_MS) {
          this.syncWritesOffUntilMs = endMs + SYNC_WRITE_BACKOFF_MS;
          this.slowSyncWrites++;
        }
        return flags.fua ? this.flush() : Promise.resolve();
      }
    }
    return this.writeAsync(offsetBytes, data, flags);
  }

  private async writeAsync(offsetBytes: number, data: Buffer, flags: WriteFlags): Promise<void> {
    this.assertWritable();
    if (this.file.writev === undefined) await this.file.write(data, 0, data.length, offsetBytes);
    else await this.enqueueWrite(offsetBytes, data);
    if (flags.fua) await this.flush();
  }

  private enqueueWrite(offsetBytes: number, data: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.writeQueue.push({ offsetBytes, data, resolve, reject });
      this.pumpWrites();
    });
  }

  /**
   * Starts queued writes: a write with the queued writes that continue it as one pwritev; a write that
   * nothing continues, with the writes queued behind it (any offsets), as one scattered batch when the
   * file offers it (one thread-pool hand-off for all). Both up to the batch limits.
   */
  private pumpWrites(): void {
    if (this.file.writev === undefined) return;
    while (this.batchesInFlight < MAX_WRITE_BATCHES_IN_FLIGHT && this.writeQueue.length > 0) {
      const first = this.writeQueue.shift() as QueuedIo;
      const batch = [first];
      let end = first.offsetBytes + first.data.length;
      let bytes = first.data.length;
      while (batch.length < MAX_BATCH_WRITES && bytes < MAX_BATCH_BYTES) {
        const next = this.writeQueue[0];
        if (next === undefined || next.offsetBytes !== end) break;
        this.writeQueue.shift();
        batch.push(next);
        end += next.data.length;
        bytes += next.data.length;
      }
      if (batch.length === 1 && this.writeQueue.length > 0 && this.file.writeScattered !== undefined) {
        while (batch.length < MAX_BATCH_WRITES && bytes < MAX_BATCH_BYTES && this.writeQueue.length > 0) {
          const next = this.writeQueue.shift() as QueuedIo;
          batch.push(next);
          bytes += next.data.length;
        }
        this.startScattered(batch);
        continue;
      }
      if (batch.length > 1) this.batchedWrites += batch.length;
      this.batchesInFlight++;
      let run: Promise<void>;
      try {
        run =
          batch.length === 1
            ? this.file.write(first.data, 0, first.data.length, first.offsetBytes)
            : (this.file as Required<StorageFile>).writev(
                batch.map((w) => w.data),
                first.offsetBytes,
              );
      } catch (e) {
        run = Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
      run.then(
        () => {
          this.batchesInFlight--;
          this.pumpWrites();
          for (const w of batch) w.resolve();
        },
        (e: unknown) => {
          this.batchesInFlight--;
          this.pumpWrites();
          for (const w of batch) w.reject(e);
        },
      );
    }
  }

  /** One scattered batch in flight; each write settles with its own result. */
  private startScattered(batch: readonly QueuedIo[]): void {
    this.scatteredWrites += batch.length;
    this.batchesInFlight++;
    let run: Promise<Array<Error | undefined>>;
    try {
      run = (this.file as Required<StorageFile>).writeScattered(
        batch.map((w) => ({ data: w.data, positionBytes: w.offsetBytes })),
      );
    } catch (e) {
      run = Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    run.then(
      (results) => {
        this.batchesInFlight--;
        this.pumpWrites();
        batch.forEach((w, i) => {
          const e = results[i];
          if (e === undefined) w.resolve();
          else w.reject(e);
        });
      },
      (e: unknown) => {
        this.batchesInFlight--;
        this.pumpWrites();
        for (const w of batch) w.reject(e);
      },
    );
  }

  private enqueueRead(buf: Buffer, offsetBytes: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.readQueue.push({ offsetBytes, data: buf, resolve, reject });
      this.pumpReads();
    });
  }

  /**
   * Starts queued small reads: one alone as a plain pread, several as one scattered batch (one
   * thread-pool hand-off for all), at most MAX_READ_BATCHES_IN_FLIGHT at once.
   */
  private pumpReads(): void {
    while (this.readBatchesInFlight < MAX_READ_BATCHES_IN_FLIGHT && this.readQueue.length > 0) {
      const batch: QueuedIo[] = [];
      let bytes = 0;
      while (batch.length < MAX_BATCH_WRITES && bytes < MAX_BATCH_BYTES && this.readQueue.length > 0) {
        const next = this.readQueue.shift() as QueuedIo;
        batch.push(next);
        bytes += next.data.length;
      }
      this.readBatchesInFlight++;
      const settle = (results: ReadonlyArray<number | Error> | Error): void => {
        this.readBatchesInFlight--;
        this.pumpReads();
        batch.forEach((r, i) => {
          const n = results instanceof Error ? results : results[i];
          if (typeof n !== 'number') r.reject(n);
          else {
            if (n < r.data.length) r.data.fill(0, n); // past the end of the file: zeros
            r.resolve();
          }
        });
      };
      let run: Promise<ReadonlyArray<number | Error>>;
      try {
        const only = batch[0] as QueuedIo;
        run =
          batch.length === 1
            ? this.file.read(only.data, 0, only.data.length, only.offsetBytes).then((n) => [n])
            : (this.file as Required<StorageFile>).readScattered(
                batch.map((r) => ({ data: r.data, positionBytes: r.offsetBytes })),
              );
      } catch (e) {
        run = Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
      if (batch.length > 1) this.scatteredReads += batch.length;
      run.then(settle, (e: unknown) => settle(e instanceof Error ? e : new Error(String(e))));
    }
  }

  /** Reads that left in a scattered batch of several reads (for tests and metrics). */
  get scatteredReadCount(): number {
    return this.scatteredReads;
  }

  /** Writes that left in a scattered batch of several writes (for tests and metrics). */
  get scatteredWriteCount(): number {
    return this.scatteredWrites;
  }

  /** Writes that left merged with others in one pwritev (for tests and metrics). */
  get mergedWriteCount(): number {
    return this.batchedWrites;
  }

  /** Synchronous writes that were slow enough to turn the synchronous path off (for tests, metrics). */
  get slowSyncWriteCount(): number {
    return this.slowSyncWrites;
  }

  /**
   * Group commit: a flush that arrives while a datasync runs waits for it and then shares one more
   * datasync with every other flush that arrived meanwhile (that one starts after they all arrived,
   * so it covers every write they must cover).
   */
  flush(): Promise<void> {
    if (this.readOnly) return Promise.resolve();
    if (this.syncRunning === undefined) return this.startSync();
    this.syncQueued ??= this.syncRunning.then(
      () => this.startQueuedSync(),
      () => this.startQueuedSync(),
    );
    return this.syncQueued;
  }

  private startSync(): Promise<void> {
    const run = this.file.datasync();
    this.syncRunning = run;
    const clear = (): void => {
      if (this.syncRunning === run) this.syncRunning = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  private startQueuedSync(): Promise<void> {
    this.syncQueued = undefined;
    return this.startSync();
  }

  async trim(offsetBytes: number, lengthBytes: number, flags: WriteFlags): Promise<void> {
    this.assertWritable();
    await this.file.punchHole(offsetBytes, lengthBytes);
    if (flags.fua) await this.flush();
  }

  async writeZeroes(offsetBytes: number, lengthBytes: number, flags: ZeroFlags): Promise<void> {
    this.assertWritable();
    if (flags.noHole) {
      zeroChunk ??= Buffer.alloc(ZERO_CHUNK_BYTES);
      const end = offsetBytes + lengthBytes;
      for (let at = offsetBytes; at < end; at += ZERO_CHUNK_BYTES) {
        await this.file.write(zeroChunk, 0, Math.min(ZERO_CHUNK_BYTES, end - at), at);
      }
    } else {
      await this.file.punchHole(offsetBytes, lengthBytes);
    }
    if (flags.fua) await this.flush();
  }

  async extents(offsetBytes: number, lengthBytes: number): Promise<BlockExtent[]> {
    const span = Math.min(lengthBytes, EXTENTS_MAX_SPAN_BYTES);
    const map = await this.file.allocation(offsetBytes, span);
    const out: BlockExtent[] = [];
    for (const e of map) {
      const hole = !e.data;
      const last = out[out.length - 1];
      if (last !== undefined && last.hole === hole) last.lengthBytes += e.lengthBytes;
      else out.push({ offsetBytes: e.offsetBytes, lengthBytes: e.lengthBytes, hole, zero: hole });
    }
    return out;
  }

  async close(): Promise<void> {
    await this.file.close();
  }

  private assertWritable(): void {
    if (this.readOnly) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `the disk ${this.file.path} is open read-only; open it read-write to change it`,
        { path: this.file.path },
      );
    }
  }
}

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
 * queue-depth-1 write's latency. With writes, trims or zero writes in flight, a synchronous pwrite
 * would wait on the event loop for the file's inode lock behind them, and the scattered batches below
 * serve depth better. Ext4 cannot
 * tell in advance whether a buffered write would block (no RWF_NOWAIT for buffered writes), so a
 * synchronous write slower than SYNC_WRITE_SLOW_MS (dirty-page throttling, journal waits) turns the
 * fast path off for SYNC_WRITE_BACKOFF_MS: the event loop stalls at most once per back-off period.
 * Other writes go through the file's `FileIoQueue` (src/host/storage/file-io-queue.ts): at most two
 * thread-pool calls at once, queued writes that continue one another leave as one pwritev, the others as
 * one scattered batch (at random 4 KiB writes, queue depth 32, one hand-off per write was ~37 % of the
 * event loop). Each write's promise settles when its own bytes were written (or failed); FUA and flush
 * work as before.
 *
 * Reads of at least SPARSE_READ_MIN_BYTES consult the allocation map first and never read holes from
 * the file (they are zero-filled in memory); smaller reads are one pread, where the kernel zero-fills
 * holes itself without touching the disk, which is cheaper than two extra lseeks. Small reads go through
 * the same queue (scattered read batches).
 */
import { SecondsiteError } from '../../domain/errors.js';
import { GiB, KiB, MiB } from '../../domain/units.js';
import { FileIoQueue } from '../storage/file-io-queue.js';
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
  private readonly io: FileIoQueue;

  private constructor(
    private readonly file: StorageFile,
    readonly sizeBytes: number,
    readonly readOnly: boolean,
    private readonly syncWriteMaxBytes: number,
  ) {
    this.io = new FileIoQueue(file);
  }

  /** Serves `file` as a block device; the device owns the file and closes it on close(). */
  static async open(file: StorageFile, options: FileBlockDeviceOptions = {}): Promise<FileBlockDevice> {
    const sizeBytes = options.sizeBytes ?? (await file.sizeBytes());
    const syncMax = file.writeNow === undefined ? 0 : (options.syncWriteMaxBytes ?? 0);
    return new FileBlockDevice(file, sizeBytes, options.readOnly ?? false, syncMax);
  }

  async read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(lengthBytes);
    if (lengthBytes < SPARSE_READ_MIN_BYTES) {
      await this.io.read(buf, offsetBytes);
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
    if (data.length <= this.syncWriteMaxBytes && !this.readOnly && this.io.writesIdle) {
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
    await this.io.write(offsetBytes, data);
    if (flags.fua) await this.flush();
  }

  /** Writes that left merged with others in one pwritev (for tests and metrics). */
  get mergedWriteCount(): number {
    return this.io.mergedWriteCount;
  }

  /** Writes that left in a scattered batch of several writes (for tests and metrics). */
  get scatteredWriteCount(): number {
    return this.io.scatteredWriteCount;
  }

  /** Small reads that left in a scattered batch of several reads (for tests and metrics). */
  get scatteredReadCount(): number {
    return this.io.scatteredReadCount;
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
    // outside the queue but counted: the synchronous path stays off while it holds the inode lock
    await this.io.outsideQueue(() => this.file.punchHole(offsetBytes, lengthBytes));
    if (flags.fua) await this.flush();
  }

  async writeZeroes(offsetBytes: number, lengthBytes: number, flags: ZeroFlags): Promise<void> {
    this.assertWritable();
    await this.io.outsideQueue(async () => {
      if (flags.noHole) {
        zeroChunk ??= Buffer.alloc(ZERO_CHUNK_BYTES);
        const end = offsetBytes + lengthBytes;
        for (let at = offsetBytes; at < end; at += ZERO_CHUNK_BYTES) {
          await this.file.write(zeroChunk, 0, Math.min(ZERO_CHUNK_BYTES, end - at), at);
        }
      } else {
        await this.file.punchHole(offsetBytes, lengthBytes);
      }
    });
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

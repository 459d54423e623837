/**
 * `FileIoQueue`: the writes (and small reads) of one file, at most MAX_BATCHES_IN_FLIGHT thread-pool
 * calls at a time, the rest queued and sent together. Several pool threads writing one file only contend
 * (its inode lock, libuv's queue mutex, wake-ups on few cores; measured on 2 vCPUs: 64 KiB writes at
 * queue depth 8 cost the event loop 3x more in the hand-off with 4 pool threads than with 1), and each
 * hand-off costs the event loop two thread wake-ups. So:
 *
 * - queued writes that continue one another (a sequential stream, a log's appends) leave as one
 *   `pwritev` (`StorageFile.writev`);
 * - queued writes that do not (random writes) leave as one scattered batch (`StorageFile.writeScattered`,
 *   the native addon's pwriteBatch: one pwrite each, in queue order, one hand-off for all);
 * - queued reads leave as one scattered batch (`readScattered`), zeros past the end of the file; a
 *   file without `readScattered` reads each request at once.
 *
 * Each request settles with its own result when its own bytes were written or read; nothing is ordered
 * beyond that (overlapping writes in one batch land in queue order). Two batches, not one: a write that
 * sleeps in the kernel (dirty-page throttling, journal) would stall everything behind it. A file without
 * `writev` gets plain one-call-per-request writes; without the scattered calls, one call per batch item.
 */
import { MiB } from '../../domain/units.js';
import type { StorageFile } from './storage.js';

/** Batches of one kind (writes, reads) in flight at once per file; the rest wait in the queue. */
export const MAX_BATCHES_IN_FLIGHT = 2;
/** One batch takes at most this many queued requests, and stops adding at this many bytes. */
const MAX_BATCH_REQUESTS = 64;
const MAX_BATCH_BYTES = 8 * MiB;

/** A queued write, or a queued read (`data` is the buffer to fill). */
interface QueuedIo {
  readonly offsetBytes: number;
  readonly data: Buffer;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

export class FileIoQueue {
  private readonly writeQueue: QueuedIo[] = [];
  private writesInFlight = 0;
  /** Mutations run through `outsideQueue` (they do not take a batch slot). */
  private outsideInFlight = 0;
  private readonly readQueue: QueuedIo[] = [];
  private readsInFlight = 0;
  /** Writes that left merged with others in one pwritev. */
  mergedWriteCount = 0;
  /** Writes that left in a scattered batch of several writes. */
  scatteredWriteCount = 0;
  /** Reads that left in a scattered batch of several reads. */
  scatteredReadCount = 0;

  constructor(private readonly file: StorageFile) {}

  /** True when no write is queued or in flight (queued or not: see `outsideQueue`). */
  get writesIdle(): boolean {
    return this.writesInFlight === 0 && this.writeQueue.length === 0 && this.outsideInFlight === 0;
  }

  /**
   * Runs a mutation of the file that does not go through the queue (a hole punch, zero writes),
   * counted as a write in flight so `writesIdle` sees it.
   */
  async outsideQueue(run: () => Promise<void>): Promise<void> {
    this.outsideInFlight++; // not a batch slot: the queue's own writes go on meanwhile
    try {
      await run();
    } finally {
      this.outsideInFlight--;
    }
  }

  /** Writes all of `data` at `offsetBytes`; the buffer must not change until this settles. */
  write(offsetBytes: number, data: Buffer): Promise<void> {
    // no queue without pwritev, but still counted: `writesIdle` must see these writes too
    if (this.file.writev === undefined)
      return this.outsideQueue(() => this.file.write(data, 0, data.length, offsetBytes));
    return new Promise<void>((resolve, reject) => {
      this.writeQueue.push({ offsetBytes, data, resolve, reject });
      this.pumpWrites();
    });
  }

  /** Fills `buf` from `offsetBytes`, with zeros past the end of the file. */
  read(buf: Buffer, offsetBytes: number): Promise<void> {
    if (this.file.readScattered === undefined) return this.readNow(buf, offsetBytes); // no batches: no queue
    return new Promise<void>((resolve, reject) => {
      this.readQueue.push({ offsetBytes, data: buf, resolve, reject });
      this.pumpReads();
    });
  }

  /**
   * Starts queued writes: a write with the queued writes that continue it as one pwritev; a write that
   * nothing continues, with the writes queued behind it (any offsets), as one scattered batch when the
   * file offers it. Both up to the batch limits.
   */
  private pumpWrites(): void {
    while (this.writesInFlight < MAX_BATCHES_IN_FLIGHT && this.writeQueue.length > 0) {
      const first = this.writeQueue.shift() as QueuedIo;
      const batch = [first];
      let end = first.offsetBytes + first.data.length;
      let bytes = first.data.length;
      while (batch.length < MAX_BATCH_REQUESTS && bytes < MAX_BATCH_BYTES) {
        const next = this.writeQueue[0];
        if (next === undefined || next.offsetBytes !== end) break;
        this.writeQueue.shift();
        batch.push(next);
        end += next.data.length;
        bytes += next.data.length;
      }
      if (batch.length === 1 && this.writeQueue.length > 0 && this.file.writeScattered !== undefined) {
        takeMore(this.writeQueue, batch, bytes);
        this.scatteredWriteCount += batch.length;
        this.start(batch, 'write', () =>
          (this.file as Required<StorageFile>).writeScattered(
            batch.map((w) => ({ data: w.data, positionBytes: w.offsetBytes })),
          ),
        );
        continue;
      }
      if (batch.length > 1) this.mergedWriteCount += batch.length;
      this.start(batch, 'write', async () => {
        if (batch.length === 1) await this.file.write(first.data, 0, first.data.length, first.offsetBytes);
        else
          await (this.file as Required<StorageFile>).writev(
            batch.map((w) => w.data),
            first.offsetBytes,
          );
        return batch.map(() => undefined);
      });
    }
  }

  private async readNow(buf: Buffer, offsetBytes: number): Promise<void> {
    const n = await this.file.read(buf, 0, buf.length, offsetBytes);
    if (n < buf.length) buf.fill(0, n);
  }

  /** Starts queued reads (only files with `readScattered` queue them): one alone as a plain pread. */
  private pumpReads(): void {
    while (this.readsInFlight < MAX_BATCHES_IN_FLIGHT && this.readQueue.length > 0) {
      const first = this.readQueue.shift() as QueuedIo;
      const batch = [first];
      takeMore(this.readQueue, batch, first.data.length);
      if (batch.length > 1) this.scatteredReadCount += batch.length;
      this.start(batch, 'read', async () =>
        batch.length === 1
          ? [await this.file.read(first.data, 0, first.data.length, first.offsetBytes)]
          : (this.file as Required<StorageFile>).readScattered(
              batch.map((r) => ({ data: r.data, positionBytes: r.offsetBytes })),
            ),
      );
    }
  }

  /**
   * Runs one batch and settles each request with its own result (a write: undefined or its error; a
   * read: the bytes read, zero-filling the rest, or its error); a failed call fails the whole batch.
   */
  private start(
    batch: readonly QueuedIo[],
    kind: 'write' | 'read',
    run: () => Promise<ReadonlyArray<number | Error | undefined>>,
  ): void {
    if (kind === 'write') this.writesInFlight++;
    else this.readsInFlight++;
    const settle = (given: ReadonlyArray<number | Error | undefined> | Error): void => {
      // a batch call that answers for fewer (or more) requests than it was given fails as a whole:
      // a missing result must never pass for a written (or read) request
      const results =
        given instanceof Error || given.length === batch.length
          ? given
          : new Error(`an I/O batch of ${batch.length} requests returned ${given.length} results`);
      if (kind === 'write') {
        this.writesInFlight--;
        this.pumpWrites();
      } else {
        this.readsInFlight--;
        this.pumpReads();
      }
      batch.forEach((r, i) => {
        const result = results instanceof Error ? results : results[i];
        if (result instanceof Error) r.reject(result);
        else {
          if (typeof result === 'number' && result < r.data.length) r.data.fill(0, result);
          r.resolve();
        }
      });
    };
    let promise: Promise<ReadonlyArray<number | Error | undefined>>;
    try {
      promise = run();
    } catch (e) {
      promise = Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    promise.then(settle, (e: unknown) => settle(e instanceof Error ? e : new Error(String(e))));
  }
}

/** Moves queued requests into `batch`, in queue order, up to the batch limits. */
function takeMore(queue: QueuedIo[], batch: QueuedIo[], bytesSoFar: number): void {
  let bytes = bytesSoFar;
  while (batch.length < MAX_BATCH_REQUESTS && bytes < MAX_BATCH_BYTES && queue.length > 0) {
    const next = queue.shift() as QueuedIo;
    batch.push(next);
    bytes += next.data.length;
  }
}

/**
 * Experiment (bench-only, not product code): a BlockDevice filter that performs writes with a
 * synchronous pwrite on the main thread instead of a libuv threadpool round trip. Buffered 4 KiB-1 MiB
 * pwrites into the page cache take microseconds, while the threadpool hand-off costs two thread wake-ups
 * per request; this quantifies that cost for the NBD write path (see docs/benchmarks.md). Durability is
 * unchanged (flush and FUA still fdatasync through the inner device).
 */
import { writeSync } from 'node:fs';
import type { BlockDevice, WriteFlags } from '../../src/host/block-device/block-device.js';
import { PassThroughFilter } from '../../src/host/block-device/pass-through.filter.js';

export class SyncWriteDevice extends PassThroughFilter {
  /** Writes up to `maxSyncBytes` go synchronously; larger ones go to the inner device (threadpool). */
  constructor(
    inner: BlockDevice,
    private readonly fd: number,
    private readonly maxSyncBytes = Infinity,
  ) {
    super(inner);
  }
  override write(offsetBytes: number, data: Buffer, flags: WriteFlags): Promise<void> {
    if (data.length > this.maxSyncBytes) return this.inner.write(offsetBytes, data, flags);
    try {
      let done = 0;
      while (done < data.length)
        done += writeSync(this.fd, data, done, data.length - done, offsetBytes + done);
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    return flags.fua ? this.inner.flush() : Promise.resolve();
  }
}

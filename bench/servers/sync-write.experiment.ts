/**
 * Experiment (bench-only, not product code): a BlockDevice filter that performs writes with a
 * synchronous pwrite on the main thread instead of a libuv threadpool round trip. Buffered 4 KiB-1 MiB
 * pwrites into the page cache take microseconds, while the threadpool hand-off costs two thread wake-ups
 * per request; this quantifies that cost for the NBD write path (see docs/benchmarks.md). Durability is
 * unchanged (flush and FUA still fdatasync through the inner device).
 */
import { writeSync } from 'node:fs';
import type {
  BlockDevice,
  BlockExtent,
  WriteFlags,
  ZeroFlags,
} from '../../src/host/block-device/block-device.js';

export class SyncWriteDevice implements BlockDevice {
  /** Writes up to `maxSyncBytes` go synchronously; larger ones go to the inner device (threadpool). */
  constructor(
    private readonly inner: BlockDevice,
    private readonly fd: number,
    private readonly maxSyncBytes = Infinity,
  ) {}
  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    return this.inner.read(offsetBytes, lengthBytes);
  }
  write(offsetBytes: number, data: Buffer, flags: WriteFlags): Promise<void> {
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
  flush(): Promise<void> {
    return this.inner.flush();
  }
  trim(offsetBytes: number, lengthBytes: number, flags: WriteFlags): Promise<void> {
    return this.inner.trim(offsetBytes, lengthBytes, flags);
  }
  writeZeroes(offsetBytes: number, lengthBytes: number, flags: ZeroFlags): Promise<void> {
    return this.inner.writeZeroes(offsetBytes, lengthBytes, flags);
  }
  extents(offsetBytes: number, lengthBytes: number): Promise<BlockExtent[]> {
    return this.inner.extents(offsetBytes, lengthBytes);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * Test-only CycleSnapshot over a Buffer (until change tracking's real one lands): the "disk at the cut"
 * is a copy of the buffer, changed extents and resync flag are given, allocation is derived from
 * 4 KiB blocks that are not all zero (or given). Counts reads and records complete/abandon.
 */
import type { CycleSnapshot } from '../../src/host/change-tracking/cycle-snapshot.js';

type Range = { offsetBytes: number; lengthBytes: number };
const ZERO_BLOCK = Buffer.alloc(4096);

export class MemoryCycleSnapshot implements CycleSnapshot {
  readonly sizeBytes: number;
  readonly trackingBlockBytes = 4096;
  readonly resyncRequired: boolean;
  private readonly data: Buffer;
  private readonly changed: Range[];
  readsBytes = 0;
  completed = 0;
  abandoned = 0;

  constructor(
    readonly diskId: string,
    data: Buffer,
    opts: { changed?: Range[]; resyncRequired?: boolean } = {},
  ) {
    this.data = Buffer.from(data);
    this.sizeBytes = data.length;
    this.changed = opts.changed ?? [];
    this.resyncRequired = opts.resyncRequired ?? false;
  }

  changedExtents(): ReadonlyArray<Range> {
    return this.changed;
  }

  read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    if (offsetBytes < 0 || offsetBytes + lengthBytes > this.sizeBytes)
      throw new RangeError('read beyond the disk');
    this.readsBytes += lengthBytes;
    return Promise.resolve(Buffer.from(this.data.subarray(offsetBytes, offsetBytes + lengthBytes)));
  }

  allocation(offsetBytes: number, lengthBytes: number): Promise<Array<Range & { data: boolean }>> {
    const out: Array<Range & { data: boolean }> = [];
    const end = offsetBytes + lengthBytes;
    for (let at = offsetBytes; at < end;) {
      const next = Math.min(end, (Math.floor(at / 4096) + 1) * 4096);
      const data = !this.data.subarray(at, next).equals(ZERO_BLOCK.subarray(0, next - at));
      const last = out[out.length - 1];
      if (last && last.data === data) last.lengthBytes += next - at;
      else out.push({ offsetBytes: at, lengthBytes: next - at, data });
      at = next;
    }
    return Promise.resolve(out);
  }

  complete(): Promise<void> {
    this.completed++;
    return Promise.resolve();
  }

  abandon(): Promise<void> {
    this.abandoned++;
    return Promise.resolve();
  }
}

/**
 * Copy-on-write preservation of a disk's content at a cut, for as long as the cycle snapshot lives.
 *
 * The first write (or trim, or zeroing) after the cut to a tracking block first copies the block's
 * cut-time content aside; the write waits for that copy. Copies live in a sparse side file laid out like
 * the disk (block b at offset b * blockBytes), so there is no index to keep and no cap to hit: a long
 * initial replication of a busy disk costs only side-file space for the blocks rewritten meanwhile.
 * Blocks that were all zeros at the cut are not copied, only marked (`holes`). The side file is scratch:
 * it is never synced, and a restart forgets it (the snapshot dies with the process; the frozen set is
 * kept in the state file and shipped by the next cycle).
 *
 * Snapshot reads race with writes without locks: a read first reads the disk, then replaces every block
 * that is preserved or being preserved by then with the side-file copy. A writer marks a block as being
 * preserved (synchronously) before it copies and before it writes, so a block with no mark after the
 * disk read was not written during that read, and its disk content is the cut content.
 */
import type { BlockDevice } from '../block-device/block-device.js';
import type { StorageFile } from '../storage/storage.js';
import { DirtyBitmap } from './dirty-bitmap.js';

export interface AllocationRange {
  offsetBytes: number;
  lengthBytes: number;
  data: boolean;
}

export class CowPreserver {
  private readonly preserved: DirtyBitmap;
  private readonly holes: DirtyBitmap;
  private readonly pending = new Map<number, Promise<void>>();
  private readonly zeroBlock: Buffer;

  constructor(
    private readonly inner: BlockDevice,
    private readonly side: StorageFile,
    private readonly blockBytes: number,
    private readonly sizeBytes: number,
  ) {
    const blocks = Math.ceil(sizeBytes / blockBytes);
    this.preserved = new DirtyBitmap(blocks);
    this.holes = new DirtyBitmap(blocks);
    this.zeroBlock = Buffer.alloc(blockBytes);
  }

  /** Blocks copied aside so far (for stats and tests). */
  preservedBlocks(): number {
    return this.preserved.count();
  }

  /**
   * Makes sure the cut content of every block touching [offsetBytes, +lengthBytes) is preserved before
   * the caller changes the disk there. Returns undefined when nothing needs to be waited for.
   */
  preserve(offsetBytes: number, lengthBytes: number): Promise<unknown> | undefined {
    if (lengthBytes <= 0) return undefined;
    const first = Math.floor(offsetBytes / this.blockBytes);
    const end = Math.ceil((offsetBytes + lengthBytes) / this.blockBytes);
    let waits: Promise<unknown>[] | undefined;
    let b = first;
    while (b < end) {
      if (this.preserved.get(b)) {
        b++;
        continue;
      }
      const p = this.pending.get(b);
      if (p !== undefined) {
        (waits ??= []).push(p);
        b++;
        continue;
      }
      const runStart = b;
      while (b < end && !this.preserved.get(b) && !this.pending.has(b)) b++;
      const job = this.copyRun(runStart, b);
      for (let i = runStart; i < b; i++) this.pending.set(i, job);
      (waits ??= []).push(job);
    }
    if (waits === undefined) return undefined;
    return waits.length === 1 ? waits[0] : Promise.all(waits);
  }

  private async copyRun(first: number, end: number): Promise<void> {
    try {
      const startBytes = first * this.blockBytes;
      const endBytes = Math.min(end * this.blockBytes, this.sizeBytes);
      const data = await this.inner.read(startBytes, endBytes - startBytes);
      let b = first;
      while (b < end) {
        if (this.isZero(data, b - first)) {
          this.holes.set(b);
          b++;
          continue;
        }
        const runStart = b;
        while (b < end && !this.isZero(data, b - first)) b++;
        const from = (runStart - first) * this.blockBytes;
        const to = Math.min((b - first) * this.blockBytes, data.length);
        await this.side.write(data, from, to - from, runStart * this.blockBytes);
      }
      this.preserved.setRange(first, end);
    } finally {
      for (let i = first; i < end; i++) this.pending.delete(i);
    }
  }

  private isZero(data: Buffer, index: number): boolean {
    const from = index * this.blockBytes;
    const to = Math.min(from + this.blockBytes, data.length);
    return data.subarray(from, to).equals(this.zeroBlock.subarray(0, to - from));
  }

  /** Content at the cut. */
  async read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    const buf = await this.inner.read(offsetBytes, lengthBytes);
    if (lengthBytes <= 0) return buf;
    const first = Math.floor(offsetBytes / this.blockBytes);
    const end = Math.ceil((offsetBytes + lengthBytes) / this.blockBytes);
    await this.settle(first, end);
    for (const [a, b] of this.preserved.runs(first, end)) {
      const from = Math.max(a * this.blockBytes, offsetBytes);
      const to = Math.min(b * this.blockBytes, offsetBytes + lengthBytes);
      const at = from - offsetBytes;
      const n = await this.side.read(buf, at, to - from, from);
      if (n < to - from) buf.fill(0, at + n, at + (to - from));
    }
    return buf;
  }

  /** Allocation at the cut: the disk's, with preserved blocks reported as data or hole as they were. */
  async allocation(offsetBytes: number, lengthBytes: number): Promise<AllocationRange[]> {
    const end = offsetBytes + lengthBytes;
    const ranges: AllocationRange[] = [];
    for (let at = offsetBytes; at < end;) {
      const extents = await this.inner.extents(at, end - at);
      if (extents.length === 0) break;
      for (const e of extents) {
        const len = Math.min(e.offsetBytes + e.lengthBytes, end) - e.offsetBytes;
        if (len > 0) ranges.push({ offsetBytes: e.offsetBytes, lengthBytes: len, data: !e.hole });
        at = e.offsetBytes + len;
      }
    }
    const firstBlock = Math.floor(offsetBytes / this.blockBytes);
    const endBlock = Math.ceil(end / this.blockBytes);
    await this.settle(firstBlock, endBlock);
    // Preserved blocks report their cut-time state: data, or a hole where they were all zeros.
    const overrides: AllocationRange[] = [];
    const holeRuns = this.holes.runs(firstBlock, endBlock);
    let h = 0;
    for (const [a, b] of this.preserved.runs(firstBlock, endBlock)) {
      let at = a;
      while (h < holeRuns.length && (holeRuns[h]?.[0] ?? Infinity) < b) {
        const [ha, hb] = holeRuns[h] as [number, number];
        if (ha > at) overrides.push(this.blockRange(at, ha, true));
        overrides.push(this.blockRange(ha, hb, false));
        at = hb;
        h++;
      }
      if (at < b) overrides.push(this.blockRange(at, b, true));
    }
    return coalesce(paint(ranges, overrides));
  }

  private blockRange(first: number, end: number, data: boolean): AllocationRange {
    const offsetBytes = first * this.blockBytes;
    return { offsetBytes, lengthBytes: Math.min(end * this.blockBytes, this.sizeBytes) - offsetBytes, data };
  }

  /** Waits until no preservation in [first, end) is in flight (failures included). */
  private async settle(first: number, end: number): Promise<void> {
    if (this.pending.size === 0) return;
    const waits: Promise<unknown>[] = [];
    if (end - first < this.pending.size) {
      for (let b = first; b < end; b++) {
        const p = this.pending.get(b);
        if (p !== undefined) waits.push(p);
      }
    } else {
      for (const [b, p] of this.pending) if (b >= first && b < end) waits.push(p);
    }
    await Promise.allSettled(waits);
  }

  /** Forgets all copies (the snapshot ended): waits for copies in flight, then empties the side file. */
  async reset(): Promise<void> {
    await Promise.allSettled([...new Set(this.pending.values())]);
    this.preserved.clearAll();
    this.holes.clearAll();
    await this.side.truncate(0);
    await this.side.truncate(this.sizeBytes);
  }
}

/**
 * Overlays sorted, non-overlapping `overrides` on sorted, contiguous `ranges` (clipped to their span),
 * in one linear sweep.
 */
function paint(ranges: readonly AllocationRange[], overrides: readonly AllocationRange[]): AllocationRange[] {
  const out: AllocationRange[] = [];
  let k = 0;
  for (const r of ranges) {
    let at = r.offsetBytes;
    const rEnd = r.offsetBytes + r.lengthBytes;
    while (k < overrides.length && at < rEnd) {
      const o = overrides[k] as AllocationRange;
      const oEnd = o.offsetBytes + o.lengthBytes;
      if (oEnd <= at) {
        k++;
        continue;
      }
      if (o.offsetBytes >= rEnd) break;
      if (o.offsetBytes > at) out.push({ offsetBytes: at, lengthBytes: o.offsetBytes - at, data: r.data });
      const from = Math.max(at, o.offsetBytes);
      const to = Math.min(oEnd, rEnd);
      out.push({ offsetBytes: from, lengthBytes: to - from, data: o.data });
      at = to;
      if (oEnd <= rEnd) k++;
    }
    if (at < rEnd) out.push({ offsetBytes: at, lengthBytes: rEnd - at, data: r.data });
  }
  return out;
}

function coalesce(ranges: AllocationRange[]): AllocationRange[] {
  const out: AllocationRange[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last !== undefined && last.data === r.data && last.offsetBytes + last.lengthBytes === r.offsetBytes) {
      last.lengthBytes += r.lengthBytes;
    } else {
      out.push({ ...r });
    }
  }
  return out;
}

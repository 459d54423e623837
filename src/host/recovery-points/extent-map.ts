/**
 * A sorted map of non-overlapping byte extents to values. `set` overwrites a range (splitting what it
 * cuts), `fillGaps` writes only where nothing is yet, `covered` returns the clipped pieces of a range.
 * A value describes its extent's first byte; `slice(value, deltaBytes)` gives the value for a piece
 * starting `deltaBytes` further (e.g. a file position moves along, a "zero" marker stays).
 */
export interface Extent<T> {
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  readonly value: T;
}

export interface ByteRange {
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

export class ExtentMap<T> {
  private items: Extent<T>[] = [];

  constructor(private readonly slice: (value: T, deltaBytes: number) => T) {}

  /** All extents, sorted by offset. */
  entries(): readonly Extent<T>[] {
    return this.items;
  }

  get size(): number {
    return this.items.length;
  }

  /** Index of the first extent whose end is after `offsetBytes`. */
  private firstEndingAfter(offsetBytes: number): number {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.items[mid] as Extent<T>;
      if (e.offsetBytes + e.lengthBytes <= offsetBytes) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Maps [offsetBytes, offsetBytes+lengthBytes) to `value`, replacing whatever was there. */
  set(offsetBytes: number, lengthBytes: number, value: T): void {
    if (lengthBytes <= 0) return;
    const end = offsetBytes + lengthBytes;
    const i = this.firstEndingAfter(offsetBytes);
    let j = i;
    const replacement: Extent<T>[] = [];
    while (j < this.items.length) {
      const e = this.items[j] as Extent<T>;
      if (e.offsetBytes >= end) break;
      if (e.offsetBytes < offsetBytes) {
        replacement.push({
          offsetBytes: e.offsetBytes,
          lengthBytes: offsetBytes - e.offsetBytes,
          value: e.value,
        });
      }
      j++;
    }
    replacement.push({ offsetBytes, lengthBytes, value });
    const last = j > i ? (this.items[j - 1] as Extent<T>) : undefined;
    if (last !== undefined && last.offsetBytes + last.lengthBytes > end) {
      replacement.push({
        offsetBytes: end,
        lengthBytes: last.offsetBytes + last.lengthBytes - end,
        value: this.slice(last.value, end - last.offsetBytes),
      });
    }
    this.items.splice(i, j - i, ...replacement);
  }

  /** The pieces of [offsetBytes, offsetBytes+lengthBytes) that are mapped, clipped, sorted. */
  covered(offsetBytes: number, lengthBytes: number): Extent<T>[] {
    const end = offsetBytes + lengthBytes;
    const out: Extent<T>[] = [];
    for (let i = this.firstEndingAfter(offsetBytes); i < this.items.length; i++) {
      const e = this.items[i] as Extent<T>;
      if (e.offsetBytes >= end) break;
      const from = Math.max(e.offsetBytes, offsetBytes);
      const to = Math.min(e.offsetBytes + e.lengthBytes, end);
      out.push({
        offsetBytes: from,
        lengthBytes: to - from,
        value: this.slice(e.value, from - e.offsetBytes),
      });
    }
    return out;
  }

  /** Maps only the parts of the range that are not mapped yet (the existing mapping wins). */
  fillGaps(offsetBytes: number, lengthBytes: number, value: T): void {
    const gaps = gapsOf({ offsetBytes, lengthBytes }, this.covered(offsetBytes, lengthBytes));
    for (const g of gaps)
      this.set(g.offsetBytes, g.lengthBytes, this.slice(value, g.offsetBytes - offsetBytes));
  }
}

/** The parts of `range` not covered by `pieces` (sorted, non-overlapping, inside the range). */
export function gapsOf(range: ByteRange, pieces: readonly ByteRange[]): ByteRange[] {
  const out: ByteRange[] = [];
  let pos = range.offsetBytes;
  const end = range.offsetBytes + range.lengthBytes;
  for (const p of pieces) {
    if (p.offsetBytes > pos) out.push({ offsetBytes: pos, lengthBytes: p.offsetBytes - pos });
    pos = Math.max(pos, p.offsetBytes + p.lengthBytes);
  }
  if (pos < end) out.push({ offsetBytes: pos, lengthBytes: end - pos });
  return out;
}

/** Sorted, coalesced ranges of a map's extents (values ignored). */
export function coalescedRanges<T>(map: ExtentMap<T>): Array<{ offsetBytes: number; lengthBytes: number }> {
  const out: Array<{ offsetBytes: number; lengthBytes: number }> = [];
  for (const e of map.entries()) {
    const last = out[out.length - 1];
    if (last !== undefined && last.offsetBytes + last.lengthBytes === e.offsetBytes)
      last.lengthBytes += e.lengthBytes;
    else out.push({ offsetBytes: e.offsetBytes, lengthBytes: e.lengthBytes });
  }
  return out;
}

/** Where a piece of staged or undo data lives: at a byte position of its log file, or all zeros. */
export type SourceRef = { readonly kind: 'data'; readonly posBytes: number } | { readonly kind: 'zero' };

export function sliceSourceRef(value: SourceRef, deltaBytes: number): SourceRef {
  return value.kind === 'data' ? { kind: 'data', posBytes: value.posBytes + deltaBytes } : value;
}

/**
 * Where a staged (redo) range's content is: a `SourceRef` into the redo log, or `base`: already in the
 * disk's base at the same offset (a first cycle staged in place, recovery-points.md section 4.1).
 */
export type RedoSource = SourceRef | { readonly kind: 'base' };

export function sliceRedoSource(value: RedoSource, deltaBytes: number): RedoSource {
  return value.kind === 'data' ? { kind: 'data', posBytes: value.posBytes + deltaBytes } : value;
}

/**
 * Byte-range arithmetic over sorted, coalesced lists of `{offsetBytes, lengthBytes}`: what the sender
 * uses to skip durably staged chunks on resume and what the receiver uses to prove a plan is covered
 * before it commits. Pure.
 */
export interface ByteRange {
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

/** Sorts and merges overlapping or touching ranges; drops empty ones. */
export function coalesce(ranges: readonly ByteRange[]): ByteRange[] {
  const sorted = ranges.filter((r) => r.lengthBytes > 0).sort((a, b) => a.offsetBytes - b.offsetBytes);
  const out: Array<{ offsetBytes: number; lengthBytes: number }> = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.offsetBytes <= last.offsetBytes + last.lengthBytes) {
      const end = Math.max(last.offsetBytes + last.lengthBytes, r.offsetBytes + r.lengthBytes);
      last.lengthBytes = end - last.offsetBytes;
    } else {
      out.push({ offsetBytes: r.offsetBytes, lengthBytes: r.lengthBytes });
    }
  }
  return out;
}

/** True when `[offsetBytes, offsetBytes+lengthBytes)` lies inside one range of the coalesced `set`. */
export function covers(set: readonly ByteRange[], offsetBytes: number, lengthBytes: number): boolean {
  // binary search for the last range starting at or before offsetBytes
  let lo = 0;
  let hi = set.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = set[mid] as ByteRange;
    if (r.offsetBytes <= offsetBytes) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (found < 0) return false;
  const r = set[found] as ByteRange;
  return offsetBytes + lengthBytes <= r.offsetBytes + r.lengthBytes;
}

/** Total bytes of a coalesced set. */
export function totalBytes(set: readonly ByteRange[]): number {
  return set.reduce((n, r) => n + r.lengthBytes, 0);
}

/** The parts of `ranges` not covered by the coalesced `set`. */
export function subtract(ranges: readonly ByteRange[], set: readonly ByteRange[]): ByteRange[] {
  const out: ByteRange[] = [];
  for (const r of coalesce(ranges)) {
    let at = r.offsetBytes;
    const end = r.offsetBytes + r.lengthBytes;
    for (const s of set) {
      const sEnd = s.offsetBytes + s.lengthBytes;
      if (sEnd <= at) continue;
      if (s.offsetBytes >= end) break;
      if (s.offsetBytes > at) out.push({ offsetBytes: at, lengthBytes: s.offsetBytes - at });
      at = Math.max(at, sEnd);
      if (at >= end) break;
    }
    if (at < end) out.push({ offsetBytes: at, lengthBytes: end - at });
  }
  return out;
}

/** Splits ranges into pieces of at most `chunkBytes`, aligned to `chunkBytes` boundaries of the disk. */
export function splitAligned(ranges: readonly ByteRange[], chunkBytes: number): ByteRange[] {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0)
    throw new RangeError(`bad chunk size ${chunkBytes}`);
  const out: ByteRange[] = [];
  for (const r of ranges) {
    let at = r.offsetBytes;
    const end = r.offsetBytes + r.lengthBytes;
    while (at < end) {
      const boundary = (Math.floor(at / chunkBytes) + 1) * chunkBytes;
      const next = Math.min(end, boundary);
      out.push({ offsetBytes: at, lengthBytes: next - at });
      at = next;
    }
  }
  return out;
}

/**
 * Merges ranges whose gap is at most `gapBytes` until at most `maxCount` remain (sending a few unchanged
 * blocks is harmless; an unbounded plan is not). Input coalesced; output coalesced.
 */
export function coarsen(ranges: readonly ByteRange[], maxCount: number): ByteRange[] {
  let cur = coalesce(ranges);
  let gap = 4096;
  while (cur.length > maxCount) {
    const next: Array<{ offsetBytes: number; lengthBytes: number }> = [];
    for (const r of cur) {
      const last = next[next.length - 1];
      if (last && r.offsetBytes - (last.offsetBytes + last.lengthBytes) <= gap) {
        last.lengthBytes = r.offsetBytes + r.lengthBytes - last.offsetBytes;
      } else next.push({ offsetBytes: r.offsetBytes, lengthBytes: r.lengthBytes });
    }
    cur = next;
    gap *= 2;
  }
  return cur;
}

/**
 * A FIFO of received bytes for the NBD parsers (server transmission, client replies): chunks are kept
 * as they arrive and `take(n)` returns the next n bytes, without a copy when they lie in one chunk.
 */
const EMPTY = Buffer.alloc(0);

export class ByteQueue {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Bytes queued and not yet taken. */
  get bytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next n bytes (the caller checked `bytes >= n`). */
  take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const first = this.chunks[0] as Buffer;
    this.buffered -= n;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let pos = 0;
    while (pos < n) {
      const c = this.chunks[0] as Buffer;
      const k = Math.min(c.length, n - pos);
      c.copy(out, pos, 0, k);
      pos += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }

  /**
   * Moves up to `lengthBytes` of the next bytes into `dst` at `dstOffset` (a copy; the chunks they came
   * from are dropped as soon as they are used up) and returns how many were moved: min(lengthBytes, bytes).
   */
  takeInto(dst: Buffer, dstOffset: number, lengthBytes: number): number {
    let moved = 0;
    while (moved < lengthBytes && this.chunks.length > 0) {
      const c = this.chunks[0] as Buffer;
      const k = Math.min(c.length, lengthBytes - moved);
      c.copy(dst, dstOffset + moved, 0, k);
      moved += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= moved;
    return moved;
  }

  /** The length of the first queued chunk (0 when empty): what `take` can return without a copy. */
  get firstChunkBytes(): number {
    return this.chunks[0]?.length ?? 0;
  }

  /** The next 4 bytes as a big-endian u32, without taking them (the caller checked `bytes >= 4`). */
  peekU32(): number {
    const first = this.chunks[0] as Buffer;
    if (first.length >= 4) return first.readUInt32BE(0);
    return Buffer.concat(this.chunks, Math.min(this.buffered, 8)).readUInt32BE(0);
  }

  /** Everything queued, as one buffer, leaving the queue empty. */
  drain(): Buffer {
    const all = Buffer.concat(this.chunks, this.buffered);
    this.clear();
    return all;
  }

  clear(): void {
    this.chunks = [];
    this.buffered = 0;
  }
}

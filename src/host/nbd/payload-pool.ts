/**
 * Reusable buffers for WRITE payloads that arrive in more than one socket chunk (every write of 64 KiB
 * or more: Node reads a socket 64 KiB at a time). Without a pool each such payload is a fresh
 * ArrayBuffer that lives until its pwrite completes; at queue depth 8 many of them outlive a
 * young-generation collection, and the external memory they hold drives V8 into a full mark-compact
 * every few tens of MiB written (measured: 35-40 % of the host agent's CPU on 1 MiB writes). Pooled
 * buffers live as long as the process and are never collected.
 *
 * A buffer goes back with `release` only after the device call that used it has settled: the
 * BlockDevice contract says a device keeps no reference to `data` once `write` has settled.
 * Capacities are powers of two (4 KiB .. 32 MiB); at most `maxRetainedBytes` of free buffers are kept,
 * the rest are left to the garbage collector.
 */
import { KiB, MiB } from '../../domain/units.js';

const MIN_CAPACITY_BYTES = 4 * KiB;
const DEFAULT_MAX_RETAINED_BYTES = 32 * MiB;

function capacityFor(lengthBytes: number): number {
  let c = MIN_CAPACITY_BYTES;
  while (c < lengthBytes) c *= 2;
  return c;
}

export class PayloadPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly leased = new Set<ArrayBuffer>();
  private retainedBytes = 0;

  constructor(private readonly maxRetainedBytes = DEFAULT_MAX_RETAINED_BYTES) {}

  /** A buffer of exactly `lengthBytes` (uninitialized), leased until `release`. */
  acquire(lengthBytes: number): Buffer {
    const capacity = capacityFor(lengthBytes);
    const list = this.free.get(capacity);
    let ab = list?.pop();
    if (ab !== undefined) this.retainedBytes -= capacity;
    else ab = Buffer.allocUnsafeSlow(capacity).buffer;
    this.leased.add(ab);
    return Buffer.from(ab, 0, lengthBytes);
  }

  /** Returns a buffer from `acquire`; anything else (or a second release) is ignored. */
  release(buf: Buffer): void {
    const ab = buf.buffer as ArrayBuffer;
    if (!this.leased.delete(ab)) return;
    const capacity = ab.byteLength;
    if (this.retainedBytes + capacity > this.maxRetainedBytes) return;
    let list = this.free.get(capacity);
    if (list === undefined) {
      list = [];
      this.free.set(capacity, list);
    }
    list.push(ab);
    this.retainedBytes += capacity;
  }

  /** Buffers handed out and not yet released (for tests and leak checks). */
  get leasedCount(): number {
    return this.leased.size;
  }

  /** Bytes of free buffers kept for reuse. */
  get freeBytes(): number {
    return this.retainedBytes;
  }
}

/** The pool every NBD connection of this process shares unless given its own. */
export const sharedPayloadPool = new PayloadPool();

/**
 * The NBD transmission phase for one connection: parse requests as bytes arrive, judge each with
 * `validateRequest`, start its BlockDevice call without waiting for earlier ones, and reply in completion
 * order. Nothing is serialized here (the spec orders only FLUSH/FUA, and those are the device's promise).
 *
 * Throughput rules (docs/design/nbd-server.md section 5): write payloads are sliced from the socket's
 * chunk when they fit (no copy), else copied chunk by chunk, as they arrive, into a pooled buffer that
 * goes back to the pool when the device call has settled (payload-pool.ts: no per-request garbage that
 * outlives a young-generation collection); each reply is handed to the socket in one corked batch, and all replies
 * finished in one tick leave in one writev; reading pauses while too much work or too many reply bytes
 * are outstanding. Every device promise has a rejection handler, so a failing device yields an errno
 * reply, never an unhandled rejection.
 */
import type { Socket } from 'node:net';
import { isSecondsiteError } from '../../domain/errors.js';
import type { BlockDevice, BlockExtent } from '../block-device/block-device.js';
import {
  BASE_ALLOCATION_CONTEXT_ID,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_REQUEST_HEADER_BYTES,
  NBD_STATE_HOLE,
  NBD_STATE_ZERO,
  NbdCmd,
  NbdErrno,
} from '../../protocol/nbd/nbd-constants.js';
import { validateRequest, type ValidationContext } from '../../protocol/nbd/nbd-request.validate.js';
import {
  decodeRequestHeader,
  encodeBlockStatusChunk,
  encodeDataChunkHeader,
  encodeErrorChunk,
  encodeHoleChunk,
  encodeNoneChunk,
  encodeSimpleReply,
  type RequestHeader,
  type StatusDescriptor,
} from '../../protocol/nbd/nbd-transmission.codec.js';
import { ByteQueue } from '../../protocol/nbd/byte-queue.js';
import { sharedPayloadPool, type PayloadPool } from './payload-pool.js';

const EMPTY = Buffer.alloc(0);

export interface TransmissionOptions {
  /** Pause reading above this many requests in flight. */
  readonly maxInFlightRequests?: number;
  /** Pause reading above this many payload bytes (write data held + read data pending). */
  readonly maxInFlightBytes?: number;
  readonly onProtocolError?: (reason: string) => void;
  /** Where multi-chunk write payloads are assembled; default: the process-wide pool. */
  readonly payloadPool?: PayloadPool;
}

const ZERO_PAGE = Buffer.alloc(64 * 1024);
const HOLE_CHECK_MIN_BYTES = 4096;
/** Replies up to this size are copied into one buffer rather than written as two. */
const SMALL_REPLY_BYTES = 16 * 1024;

function isAllZero(data: Buffer): boolean {
  for (let pos = 0; pos < data.length; pos += ZERO_PAGE.length) {
    const n = Math.min(ZERO_PAGE.length, data.length - pos);
    if (!data.subarray(pos, pos + n).equals(n === ZERO_PAGE.length ? ZERO_PAGE : ZERO_PAGE.subarray(0, n)))
      return false;
  }
  return true;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : 'the block device failed';
}

/** Maps a device failure to the NBD errno vocabulary. */
export function errnoFor(e: unknown): number {
  if (isSecondsiteError(e, 'SECONDSITE_ERR_NO_SPACE')) return NbdErrno.ENOSPC;
  if (isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT')) return NbdErrno.EINVAL;
  if (isSecondsiteError(e, 'SECONDSITE_ERR_FORBIDDEN')) return NbdErrno.EPERM;
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') return NbdErrno.ENOSPC;
  if (code === 'EROFS' || code === 'EPERM' || code === 'EACCES') return NbdErrno.EPERM;
  return NbdErrno.EIO;
}

export class NbdTransmission {
  private readonly queue = new ByteQueue();
  private pendingWrite: RequestHeader | null = null;
  /** The pooled buffer the pending write's payload is being copied into, once it spans chunks. */
  private pendingPayload: Buffer | null = null;
  private pendingFilled = 0;
  private pendingWriteErrno = 0;
  private pendingWriteMessage = '';
  private inFlight = 0;
  private inFlightBytes = 0;
  private readPaused = false;
  private writeBlocked = false;
  private corked = false;
  private stopped = false;
  private discReceived = false;
  private idleWaiters: (() => void)[] = [];
  private readonly maxInFlightRequests: number;
  private readonly maxInFlightBytes: number;
  private readonly ctx: ValidationContext;
  private readonly structured: boolean;
  private readonly pool: PayloadPool;

  constructor(
    private readonly socket: Socket,
    private readonly device: BlockDevice,
    session: { structuredReplies: boolean; blockStatusSelected: boolean; readOnly: boolean },
    private readonly options: TransmissionOptions = {},
  ) {
    this.maxInFlightRequests = options.maxInFlightRequests ?? 128;
    this.maxInFlightBytes = options.maxInFlightBytes ?? 64 * 1024 * 1024;
    this.structured = session.structuredReplies;
    this.pool = options.payloadPool ?? sharedPayloadPool;
    this.ctx = {
      sizeBytes: BigInt(device.sizeBytes),
      readOnly: session.readOnly || device.readOnly,
      structuredReplies: session.structuredReplies,
      blockStatusSelected: session.blockStatusSelected,
    };
  }

  /** Starts parsing: `leftover` holds bytes that arrived with the option that ended the handshake. */
  start(leftover: Buffer): void {
    if (leftover.length > 0) this.push(leftover);
    this.socket.on('data', (chunk: Buffer) => {
      this.push(chunk);
      this.parse();
    });
    this.socket.on('drain', () => {
      this.writeBlocked = false;
      this.maybeResume();
    });
    this.socket.on('close', () => this.stop());
    this.socket.on('error', () => this.stop());
    this.socket.setNoDelay(true);
    this.socket.resume(); // the handshake reader may have left it paused
    this.parse();
  }

  /** Resolves when no device call of this connection is in flight. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private stop(): void {
    this.stopped = true;
    this.queue.clear();
    if (this.pendingPayload !== null) {
      this.pool.release(this.pendingPayload); // never handed to the device
      this.pendingPayload = null;
    }
  }

  private hardDisconnect(reason: string): void {
    this.options.onProtocolError?.(reason);
    this.stop();
    this.socket.destroy();
  }

  private push(chunk: Buffer): void {
    if (this.stopped || this.discReceived) return; // nothing after DISC is read (spec: client sends nothing)
    this.queue.push(chunk);
  }

  private parse(): void {
    while (!this.stopped && !this.discReceived) {
      const w = this.pendingWrite;
      if (w) {
        const n = w.lengthBytes;
        let payload = this.pendingPayload;
        let pooled = true;
        if (payload === null) {
          if (this.queue.firstChunkBytes >= n) {
            payload = this.queue.take(n); // within one chunk: a slice, no copy
            pooled = false;
          } else if (this.queue.bytes === 0) {
            return; // it may still arrive in one chunk
          } else {
            payload = this.pool.acquire(n);
            this.pendingPayload = payload;
            this.pendingFilled = 0;
          }
        }
        if (pooled) {
          this.pendingFilled += this.queue.takeInto(payload, this.pendingFilled, n - this.pendingFilled);
          if (this.pendingFilled < n) return;
          this.pendingPayload = null;
        }
        this.pendingWrite = null;
        if (this.pendingWriteErrno !== 0) {
          if (pooled) this.pool.release(payload);
          this.replyError(w, this.pendingWriteErrno, this.pendingWriteMessage);
        } else this.dispatch(w, payload, pooled);
        continue;
      }
      if (this.queue.bytes < NBD_REQUEST_HEADER_BYTES) return;
      // Over the limits, leave the rest buffered: one socket chunk can hold thousands of 32 MiB
      // READ headers, so pausing the socket alone would not bound memory. maybeResume() parses on.
      if (this.overloaded()) return;
      const h = decodeRequestHeader(this.queue.take(NBD_REQUEST_HEADER_BYTES));
      const verdict = validateRequest(h, this.ctx);
      if (verdict.kind === 'disconnect') return this.hardDisconnect(verdict.reason);
      if (h.type === NbdCmd.WRITE) {
        this.pendingWrite = h;
        this.pendingWriteErrno = verdict.kind === 'error' ? verdict.errno : 0;
        this.pendingWriteMessage = verdict.kind === 'error' ? verdict.message : '';
        continue;
      }
      if (verdict.kind === 'error') {
        this.replyError(h, verdict.errno, verdict.message);
        continue;
      }
      if (h.type === NbdCmd.DISC) {
        this.discReceived = true;
        this.queue.clear();
        this.finishIfDisconnecting();
        return;
      }
      this.dispatch(h, null, false);
    }
  }

  /** `pooled`: the payload is leased from the pool and goes back once the device call has settled. */
  private dispatch(h: RequestHeader, payload: Buffer | null, pooled: boolean): void {
    const offset = Number(h.offset);
    const length = h.lengthBytes;
    const fua = (h.flags & NBD_CMD_FLAG_FUA) !== 0;
    let work: Promise<unknown>;
    try {
      switch (h.type) {
        case NbdCmd.READ:
          work = length === 0 ? Promise.resolve(EMPTY) : this.device.read(offset, length);
          break;
        case NbdCmd.WRITE:
          work = length === 0 ? Promise.resolve() : this.device.write(offset, payload as Buffer, { fua });
          break;
        case NbdCmd.FLUSH:
          work = this.device.flush();
          break;
        case NbdCmd.TRIM:
          work = length === 0 ? Promise.resolve() : this.device.trim(offset, length, { fua });
          break;
        case NbdCmd.WRITE_ZEROES: {
          const noHole = (h.flags & NBD_CMD_FLAG_NO_HOLE) !== 0;
          work = length === 0 ? Promise.resolve() : this.device.writeZeroes(offset, length, { fua, noHole });
          break;
        }
        case NbdCmd.BLOCK_STATUS:
          work = this.device.extents(offset, length);
          break;
        default:
          if (pooled && payload !== null) this.pool.release(payload);
          this.replyError(h, NbdErrno.EINVAL, `unknown command ${h.type}`);
          return;
      }
    } catch (e) {
      work = Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    this.inFlight++;
    this.inFlightBytes += length;
    this.maybePause();
    // One reaction per request: both handlers catch everything, so the derived promise never rejects.
    if (pooled) {
      const leased = payload as Buffer;
      void work.then(
        (value) => {
          this.pool.release(leased);
          this.complete(h, value, null);
        },
        (e: unknown) => {
          this.pool.release(leased);
          this.complete(h, undefined, e);
        },
      );
      return;
    }
    void work.then(
      (value) => this.complete(h, value, null),
      (e: unknown) => this.complete(h, undefined, e),
    );
  }

  private complete(h: RequestHeader, value: unknown, error: unknown): void {
    try {
      if (error !== null) this.replyError(h, errnoFor(error), messageOf(error));
      else if (h.type === NbdCmd.READ) this.replyRead(h, value as Buffer);
      else if (h.type === NbdCmd.BLOCK_STATUS)
        this.replyBlockStatus(h, Number(h.offset), h.lengthBytes, value as BlockExtent[]);
      else this.replyOk(h);
    } catch (e) {
      this.hardDisconnect(`reply failed: ${messageOf(e)}`);
    }
    this.inFlight--;
    this.inFlightBytes -= h.lengthBytes;
    this.maybeResume();
    if (this.inFlight === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
      this.finishIfDisconnecting();
    }
  }

  private finishIfDisconnecting(): void {
    if (this.discReceived && this.inFlight === 0 && !this.socket.destroyed) {
      const socket = this.socket;
      socket.end(() => socket.destroy());
    }
  }

  private overloaded(): boolean {
    return (
      this.inFlight >= this.maxInFlightRequests ||
      this.inFlightBytes >= this.maxInFlightBytes ||
      this.writeBlocked
    );
  }

  private maybePause(): void {
    if (this.readPaused || !this.overloaded()) return;
    this.readPaused = true;
    this.socket.pause();
  }

  private maybeResume(): void {
    if (!this.readPaused || this.stopped || this.overloaded()) return;
    this.readPaused = false;
    this.socket.resume();
    this.parse();
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  /**
   * Hands one reply (header and optional payload) to the socket as one unit. When other requests are
   * still in flight, more replies are coming in this tick: cork, and uncork on the next tick so they
   * share one writev. A lone reply (QD1) is written at once: one syscall, no added tick of latency.
   */
  private send(head: Buffer, body?: Buffer): void {
    const s = this.socket;
    if (s.destroyed || !s.writable) return;
    let ok: boolean;
    if (this.corked || this.inFlight > 1) {
      if (!this.corked) {
        this.corked = true;
        s.cork();
        process.nextTick(this.uncork);
      }
      ok = s.write(head);
      if (body && body.length > 0) ok = s.write(body) && ok;
    } else if (!body || body.length === 0) {
      ok = s.write(head);
    } else if (body.length <= SMALL_REPLY_BYTES) {
      ok = s.write(Buffer.concat([head, body], head.length + body.length));
    } else {
      s.cork();
      ok = s.write(head);
      ok = s.write(body) && ok;
      s.uncork();
    }
    if (!ok && !this.writeBlocked) {
      this.writeBlocked = true;
      this.maybePause();
    }
  }

  private replyOk(h: RequestHeader): void {
    this.send(
      this.structured
        ? encodeNoneChunk(h.cookieHi, h.cookieLo)
        : encodeSimpleReply(0, h.cookieHi, h.cookieLo),
    );
  }

  private replyError(h: RequestHeader, errno: number, message: string): void {
    this.send(
      this.structured
        ? encodeErrorChunk(h.cookieHi, h.cookieLo, errno, message)
        : encodeSimpleReply(errno, h.cookieHi, h.cookieLo),
    );
  }

  private replyRead(h: RequestHeader, data: Buffer): void {
    if (!this.structured) {
      this.send(encodeSimpleReply(0, h.cookieHi, h.cookieLo), data);
      return;
    }
    if (data.length === 0) {
      this.send(encodeNoneChunk(h.cookieHi, h.cookieLo));
      return;
    }
    if (data.length >= HOLE_CHECK_MIN_BYTES && isAllZero(data)) {
      this.send(encodeHoleChunk(h.cookieHi, h.cookieLo, h.offset, data.length));
      return;
    }
    this.send(encodeDataChunkHeader(h.cookieHi, h.cookieLo, h.offset, data.length), data);
  }

  private replyBlockStatus(h: RequestHeader, offset: number, length: number, extents: BlockExtent[]): void {
    const end = offset + length;
    const out: StatusDescriptor[] = [];
    let pos = offset;
    for (const e of extents) {
      const eEnd = Math.min(e.offsetBytes + e.lengthBytes, end);
      if (e.offsetBytes !== pos || eEnd <= pos) break; // must be contiguous from the request offset
      const status = (e.hole ? NBD_STATE_HOLE : 0) | (e.zero ? NBD_STATE_ZERO : 0);
      const last = out[out.length - 1];
      if (last && last.status === status) last.lengthBytes += eEnd - pos;
      else out.push({ lengthBytes: eEnd - pos, status });
      pos = eEnd;
      if (pos >= end) break;
    }
    if (out.length === 0) {
      this.replyError(h, NbdErrno.EIO, 'the device reported no extents for the range');
      return;
    }
    const descriptors = (h.flags & NBD_CMD_FLAG_REQ_ONE) !== 0 ? out.slice(0, 1) : out;
    this.send(encodeBlockStatusChunk(h.cookieHi, h.cookieLo, BASE_ALLOCATION_CONTEXT_ID, descriptors));
  }
}

/**
 * Exact-length reads from a byte stream for the handshake phase, on both ends (server and client).
 * Bytes are buffered as they arrive; a read never asks for more than its caller allowed (callers bound
 * every length before reading). Above a high-water mark the stream is paused, so a peer flooding a
 * stalled handshake is held by TCP, not by our memory. When the stream ends, errors or is detached,
 * the pending read rejects with SECONDSITE_ERR_CONNECTION_LOST: a peer that disconnects at any byte of
 * the handshake just ends it (never a hang or an assertion: CVE-2017-7539, CVE-2021-20286 shapes).
 *
 * The stream is anything socket-like (node:net / node:tls sockets); the protocol layer does no I/O.
 */
import { SecondsiteError } from '../../domain/errors.js';
import { ByteQueue } from './byte-queue.js';

/** The part of a socket the reader uses. */
export interface ByteSource {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (e: Error) => void): unknown;
  off(event: 'data', listener: (chunk: Buffer) => void): unknown;
  off(event: 'end' | 'close', listener: () => void): unknown;
  off(event: 'error', listener: (e: Error) => void): unknown;
  pause(): unknown;
  resume(): unknown;
}

/** Above this many unread bytes the stream is paused: a handshake never legitimately has more queued. */
const HIGH_WATER_BYTES = 256 * 1024;

export class ExactReader {
  private pausedByReader = false;
  private readonly queue = new ByteQueue();
  private pending: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private ended: Error | null = null;
  private readonly onData = (chunk: Buffer): void => {
    this.queue.push(chunk);
    if (this.queue.bytes >= HIGH_WATER_BYTES && !this.pausedByReader) {
      this.pausedByReader = true;
      this.source.pause();
    }
    this.pump();
  };
  private readonly onEnd = (): void => this.fail(`${this.peer} closed the connection during the handshake`);
  private readonly onError = (e: Error): void =>
    this.fail(`connection error during the handshake: ${e.message}`);

  /** `peer` names the other end in messages, e.g. 'the client' or 'the NBD server'. */
  constructor(
    private readonly source: ByteSource,
    private readonly peer: string,
  ) {
    source.on('data', this.onData);
    source.on('end', this.onEnd);
    source.on('close', this.onEnd);
    source.on('error', this.onError);
  }

  /** Bytes received but not yet read. */
  get bufferedBytes(): number {
    return this.queue.bytes;
  }

  readExact(n: number): Promise<Buffer> {
    if (this.pending) return Promise.reject(new Error('ExactReader: concurrent reads'));
    return new Promise((resolve, reject) => {
      this.pending = { n, resolve, reject };
      this.pump();
    });
  }

  /** Reads and drops n bytes without allocating them as one buffer. */
  async discard(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      const step = Math.min(left, 16 * 1024);
      await this.readExact(step);
      left -= step;
    }
  }

  /**
   * Stops reading: removes listeners and returns what was buffered but not read. The stream may be
   * left paused; the next owner resumes it.
   */
  detach(): Buffer {
    this.source.off('data', this.onData);
    this.source.off('end', this.onEnd);
    this.source.off('close', this.onEnd);
    this.source.off('error', this.onError);
    const rest = this.queue.drain();
    this.fail('the reader was detached');
    return rest;
  }

  /** Rejects the pending read (used by handshake timers). */
  fail(message: string): void {
    if (!this.ended) this.ended = new SecondsiteError('SECONDSITE_ERR_CONNECTION_LOST', message);
    const p = this.pending;
    this.pending = null;
    p?.reject(this.ended);
  }

  private pump(): void {
    const p = this.pending;
    if (!p) return;
    if (this.queue.bytes >= p.n) {
      this.pending = null;
      p.resolve(this.take(p.n));
    } else if (this.ended) {
      this.pending = null;
      p.reject(this.ended);
    }
  }

  private take(n: number): Buffer {
    const out = this.queue.take(n);
    if (this.pausedByReader && this.queue.bytes < HIGH_WATER_BYTES) {
      this.pausedByReader = false;
      this.source.resume();
    }
    return out;
  }
}

/**
 * One replication connection as a stream of checked frames. Incoming bytes go through FrameReader
 * (strict decoding) and the session rules (seq, epoch, relationship, extents) before a frame is queued;
 * the first violation fails the connection: the socket is destroyed, nothing after it is delivered, and
 * every waiter gets the error. Outgoing frames get this side's seq (1, 2, ...) and honour socket
 * backpressure. The socket is paused while too many frames wait to be processed.
 */
import type { Duplex } from 'node:stream';
import { SecondsiteError, isSecondsiteError } from '../../domain/errors.js';
import type { ErrorCode } from '../../domain/errors.js';
import { ERROR_REGISTRY } from '../../domain/errors.js';
import { FrameReader, HEADER_BYTES, encodeFrame } from '../../protocol/replication/frame-codec.js';
import type { Frame } from '../../protocol/replication/frame-codec.js';
import { checkHeaderInSession, checkMessageInSession } from '../../protocol/replication/frame-rules.js';
import type { SessionContext } from '../../protocol/replication/frame-rules.js';
import type { Message, MessageKind, MessageOf } from '../../protocol/replication/messages.js';

/**
 * The socket is paused while this many frames, or this many frame bytes (headers and payloads), wait
 * to be taken, and resumed below half of both: a peer's 16 MiB chunks hold at most 64 MiB (plus the
 * frame that crossed the line and what the socket had buffered), not 64 x 16 MiB.
 */
export const MAX_QUEUED_FRAMES = 64;
export const MAX_QUEUED_BYTES = 64 * 1024 * 1024;
/** Outgoing bytes that may wait in the socket before `send` waits for drain. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/** A received frame's bytes, header and payload (what the receive bound counts). */
function frameBytes(f: Frame): number {
  return HEADER_BYTES + f.header.payloadLength;
}

export class FrameConnection {
  private readonly reader: FrameReader;
  private readonly queue: Frame[] = [];
  private queuedBytesNow = 0;
  private waiter: { resolve: (f: Frame) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;
  private sendSeq = 0;
  /** Bytes written to the socket (frame headers and payloads). */
  wireBytesSent = 0;
  /** Own header fields; `relationshipKey` is set once known (from HELLO). */
  own: { relationshipKey: Buffer; epoch: number };

  constructor(
    readonly socket: Duplex,
    /** Rules for the peer's frames. */
    readonly peer: SessionContext,
    own: { relationshipKey: Buffer; epoch: number },
  ) {
    this.own = own;
    this.reader = new FrameReader((h) => checkHeaderInSession(h, this.peer));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () =>
      this.fail(
        new SecondsiteError(
          'SECONDSITE_ERR_CONNECTION_LOST',
          this.reader.midFrame
            ? 'the peer closed the connection in the middle of a frame'
            : 'the peer closed the connection',
        ),
      ),
    );
    socket.on('close', () =>
      this.fail(new SecondsiteError('SECONDSITE_ERR_CONNECTION_LOST', 'the connection closed')),
    );
    socket.on('error', (e: Error) =>
      this.fail(
        new SecondsiteError(
          'SECONDSITE_ERR_CONNECTION_LOST',
          `connection error: ${e.message}`,
          {},
          { cause: e },
        ),
      ),
    );
  }

  get failed(): Error | null {
    return this.failure;
  }

  private onData(chunk: Buffer): void {
    if (this.failure) return;
    try {
      this.reader.push(chunk);
      for (let f = this.reader.next(); f; f = this.reader.next()) {
        checkMessageInSession(f.message, this.peer);
        if (f.message.kind === 'error') throw remoteError(f.message);
        this.deliver(f);
      }
    } catch (e) {
      // The owner gets the error from next() and refuses (ERROR frame, close); bytes after the bad
      // frame are ignored.
      this.fail(e);
      this.socket.pause();
    }
  }

  private deliver(f: Frame): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve(f);
      return;
    }
    this.queue.push(f);
    this.queuedBytesNow += frameBytes(f);
    if (this.queue.length >= MAX_QUEUED_FRAMES || this.queuedBytesNow >= MAX_QUEUED_BYTES)
      this.socket.pause();
  }

  /** Frames received and checked, waiting for `next` (tests, diagnostics). */
  get queuedFrames(): number {
    return this.queue.length;
  }

  /** Their bytes, headers and payloads. */
  get queuedBytes(): number {
    return this.queuedBytesNow;
  }

  /** Fails the connection (first failure wins) and wakes the waiter. */
  fail(e: unknown): void {
    if (this.failure) return;
    this.failure = e instanceof Error ? e : new Error(String(e));
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.reject(this.failure);
    }
  }

  /** The next frame, or a rejection: peer error, bad frame, connection lost, or timeout. */
  next(timeoutMs: number): Promise<Frame> {
    const f = this.queue.shift();
    if (f) {
      this.queuedBytesNow -= frameBytes(f);
      if (this.queue.length < MAX_QUEUED_FRAMES / 2 && this.queuedBytesNow < MAX_QUEUED_BYTES / 2)
        this.socket.resume();
      return Promise.resolve(f);
    }
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(
          new SecondsiteError('SECONDSITE_ERR_TIMEOUT', `no frame from the peer within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.waiter = {
        resolve: (x) => {
          clearTimeout(timer);
          resolve(x);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  /** A frame that must be of `kind` (or a protocol error). */
  async expect<K extends MessageKind>(
    kind: K,
    timeoutMs: number,
  ): Promise<{ frame: Frame; message: MessageOf<K> }> {
    const frame = await this.next(timeoutMs);
    if (frame.message.kind !== kind) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_PROTOCOL',
        `expected a ${kind} frame, got ${frame.message.kind}`,
      );
    }
    return { frame, message: frame.message as MessageOf<K> };
  }

  /** Sends one frame; resolves when the socket accepted it (waits for drain under backpressure). */
  async send(message: Message, flags = 0, evenIfFailed = false): Promise<number> {
    if (this.failure && !evenIfFailed) throw this.failure;
    this.sendSeq++;
    for (const p of coalesceSmallParts(encodeFrame({ ...this.own, seq: this.sendSeq, flags }, message))) {
      this.wireBytesSent += p.length;
      this.socket.write(p);
    }
    // Let up to MAX_BUFFERED_BYTES queue in the socket so the next chunk is prepared while this one is
    // written; beyond that, wait for the socket to drain (bounded memory).
    if ((this.socket as Duplex & { writableLength: number }).writableLength > MAX_BUFFERED_BYTES) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.socket.off('drain', done);
          this.socket.off('close', done);
          resolve();
        };
        this.socket.on('drain', done);
        this.socket.on('close', done);
      });
    }
    if (this.failure && !evenIfFailed) throw this.failure;
    return this.sendSeq;
  }

  /** Best-effort ERROR frame, then close. */
  async refuse(e: unknown): Promise<void> {
    const err = isSecondsiteError(e)
      ? e
      : new SecondsiteError('SECONDSITE_ERR_INTERNAL', e instanceof Error ? e.message : String(e));
    try {
      if (!this.socket.destroyed && this.socket.writable) {
        await Promise.race([
          this.send({ kind: 'error', code: err.code, message: err.message }, 0, true),
          new Promise((r) => setTimeout(r, 1000)),
        ]);
      }
    } catch {
      // the peer may be gone already
    }
    this.close();
  }

  close(): void {
    this.fail(new SecondsiteError('SECONDSITE_ERR_CONNECTION_LOST', 'the connection was closed locally'));
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  destroy(): void {
    this.fail(new SecondsiteError('SECONDSITE_ERR_CONNECTION_LOST', 'the connection was closed locally'));
    this.socket.destroy();
  }
}

/** Parts below this size are merged before they are written (a large DATA body is written as is). */
const SMALL_PART_BYTES = 16 * 1024;

/**
 * Merges runs of small parts (header, fixed fields) into one buffer: every socket write on a TLS
 * socket is a separate record and encryption call, and a frame has up to seven parts.
 */
export function coalesceSmallParts(parts: readonly Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  let run: Buffer[] = [];
  const flush = (): void => {
    if (run.length === 1) out.push(run[0] as Buffer);
    else if (run.length > 1) out.push(Buffer.concat(run));
    run = [];
  };
  for (const p of parts) {
    if (p.length >= SMALL_PART_BYTES) {
      flush();
      out.push(p);
    } else run.push(p);
  }
  flush();
  return out;
}

/** An ERROR frame from the peer as a local error with the peer's code (unknown codes become PROTOCOL). */
export function remoteError(m: MessageOf<'error'>): SecondsiteError {
  const known = Object.prototype.hasOwnProperty.call(ERROR_REGISTRY, m.code);
  return new SecondsiteError(
    known ? (m.code as ErrorCode) : 'SECONDSITE_ERR_PROTOCOL',
    `peer: ${m.message}`,
    { remote: true, remoteCode: m.code },
  );
}

/**
 * A socket or TLS error as a classified error: certificate and handshake failures are permanent
 * (SECONDSITE_ERR_UNAUTHORIZED: a person must fix certificates or the CA), everything else (resets,
 * refused connections, records that fail their MAC) is a transient lost connection.
 */
export function socketError(e: Error): SecondsiteError {
  if (e instanceof SecondsiteError) return e;
  const code = (e as { code?: string }).code ?? '';
  // Certificate and handshake refusals are permanent; a TLS record failing its MAC mid-stream (bytes
  // corrupted in transit) is a transient connection loss like a reset.
  if (
    /CERT|UNKNOWN_CA|UNABLE_TO_(GET|VERIFY)|SELF_SIGNED|HANDSHAKE_FAILURE|ACCESS_DENIED|ALTNAME|NO_SHARED_CIPHER|UNSUPPORTED_PROTOCOL|WRONG_VERSION/.test(
      code,
    )
  ) {
    return new SecondsiteError(
      'SECONDSITE_ERR_UNAUTHORIZED',
      `TLS authentication with the peer failed (${code}: ${e.message}): both hosts need certificates from the same CA`,
      { tlsCode: code },
      { cause: e },
    );
  }
  return new SecondsiteError(
    'SECONDSITE_ERR_CONNECTION_LOST',
    `connection error: ${e.message}`,
    { socketCode: code },
    { cause: e },
  );
}

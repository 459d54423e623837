/**
 * A TypeScript NBD client (fixed newstyle, structured replies, base:allocation), used by the guest VM
 * process and the workload generator to write through the host agent's NBD server.
 *
 * Requests are pipelined: every call sends its request at once and returns a promise; replies are
 * matched to requests by cookie in whatever order they arrive. Each reply is checked against its
 * request (chunk bounds, coverage, descriptor sums); a reply that breaks the protocol fails every
 * pending request and closes the connection. An NBD error reply rejects only its own request, with a
 * SecondsiteError whose `details.errno` is the NBD errno.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { SecondsiteError, type ErrorCode } from '../domain/errors.js';
import {
  NBD_CMD_FLAG_DF,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_DF,
  NBD_REPLY_FLAG_DONE,
  NBD_REQUEST_HEADER_BYTES,
  NBD_REQUEST_MAGIC,
  NbdCmd,
  NbdErrno,
  NbdReplyType,
} from '../protocol/nbd/nbd-constants.js';
import { decodeReplyHeader, replyHeaderBytes } from '../protocol/nbd/nbd-transmission.codec.js';
import { negotiate, type ClientTlsOptions } from './nbd-client-handshake.js';
import { ByteQueue } from '../protocol/nbd/byte-queue.js';

export type { ClientTlsOptions } from './nbd-client-handshake.js';

export interface NbdClientOptions {
  /** Unix socket path (the normal case) ... */
  readonly socketPath?: string;
  /** ... or TCP host and port (then `tls` is required by our server). */
  readonly host?: string;
  readonly port?: number;
  readonly exportName?: string;
  readonly tls?: ClientTlsOptions;
  /** Default true. */
  readonly structuredReplies?: boolean;
  /** Select base:allocation. Default true. */
  readonly blockStatus?: boolean;
  /** Deadline for connect + handshake. Default 10 000. */
  readonly connectTimeoutMs?: number;
}

export interface BlockStatusDescriptor {
  lengthBytes: number;
  /** base:allocation bits: 1 = hole, 2 = zero. */
  status: number;
}

interface Pending {
  type: number;
  offset: number;
  length: number;
  /** READ: assembled data; allocated lazily. */
  data: Buffer | null;
  coveredBytes: number;
  descriptors: BlockStatusDescriptor[] | null;
  error: { errno: number; message: string } | null;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

const ERRNO_CODES: Record<number, ErrorCode> = {
  [NbdErrno.EPERM]: 'SECONDSITE_ERR_FORBIDDEN',
  [NbdErrno.EINVAL]: 'SECONDSITE_ERR_INVALID_ARGUMENT',
  [NbdErrno.ENOSPC]: 'SECONDSITE_ERR_NO_SPACE',
  [NbdErrno.ESHUTDOWN]: 'SECONDSITE_ERR_CONNECTION_LOST',
};

/** The error a failed NBD request rejects with; `details.errno` holds the NBD errno. */
export function nbdRequestError(errno: number, message: string, command: number): SecondsiteError {
  return new SecondsiteError(
    ERRNO_CODES[errno] ?? 'SECONDSITE_ERR_IO',
    `NBD command ${command} failed with errno ${errno}${message ? `: ${message}` : ''}`,
    { errno, command },
  );
}

export class NbdClient {
  readonly sizeBytes: number;
  readonly transmissionFlags: number;
  readonly structuredReplies: boolean;
  readonly blockSizes: { minBytes: number; preferredBytes: number; maxBytes: number } | null;
  private readonly baseAllocationId: number | null;
  private readonly pending = new Map<number, Pending>();
  private nextCookie = 1;
  private readonly queue = new ByteQueue();
  private header: ReturnType<typeof decodeReplyHeader> | null = null;
  private failure: Error | null = null;
  private corked = false;
  private closing = false;
  private drainWaiters: (() => void)[] = [];

  private constructor(
    private readonly socket: Socket,
    n: Awaited<ReturnType<typeof negotiate>>,
  ) {
    this.sizeBytes = n.sizeBytes;
    this.transmissionFlags = n.transmissionFlags;
    this.structuredReplies = n.structuredReplies;
    this.blockSizes = n.blockSizes;
    this.baseAllocationId = n.baseAllocationId;
    if (n.leftover.length > 0) this.push(n.leftover);
    socket.on('data', (c: Buffer) => {
      this.push(c);
      this.parse();
    });
    socket.on('error', (e) =>
      this.fail(new SecondsiteError('SECONDSITE_ERR_CONNECTION_LOST', `NBD connection error: ${e.message}`)),
    );
    socket.on('close', () =>
      this.fail(
        new SecondsiteError('SECONDSITE_ERR_CONNECTION_LOST', 'the NBD server closed the connection'),
      ),
    );
    socket.setNoDelay(true);
    this.parse();
  }

  /** Connects, negotiates, and returns a client in the transmission phase. */
  static async connect(options: NbdClientOptions): Promise<NbdClient> {
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    const socket =
      options.socketPath !== undefined
        ? netConnect(options.socketPath)
        : netConnect(options.port ?? 10809, options.host ?? 'localhost');
    const timer = setTimeout(
      () => socket.destroy(new Error(`NBD handshake did not finish within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      const n = await negotiate(socket, {
        exportName: options.exportName ?? '',
        structuredReplies: options.structuredReplies ?? true,
        blockStatus: options.blockStatus ?? true,
        ...(options.tls ? { tls: options.tls } : {}),
      });
      return new NbdClient(n.socket, n);
    } catch (e) {
      socket.destroy();
      if (e instanceof SecondsiteError) throw e;
      throw new SecondsiteError(
        'SECONDSITE_ERR_CONNECTION_LOST',
        `cannot connect to the NBD server: ${(e as Error).message}`,
        {},
        { cause: e },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  get readOnly(): boolean {
    return (this.transmissionFlags & NBD_FLAG_READ_ONLY) !== 0;
  }

  get canMultiConn(): boolean {
    return (this.transmissionFlags & NBD_FLAG_CAN_MULTI_CONN) !== 0;
  }

  get canBlockStatus(): boolean {
    return this.baseAllocationId !== null;
  }

  /** Requests in flight. */
  get inFlight(): number {
    return this.pending.size;
  }

  read(offsetBytes: number, lengthBytes: number, options: { df?: boolean } = {}): Promise<Buffer> {
    const df = options.df === true && (this.transmissionFlags & NBD_FLAG_SEND_DF) !== 0;
    return this.request(NbdCmd.READ, df ? NBD_CMD_FLAG_DF : 0, offsetBytes, lengthBytes) as Promise<Buffer>;
  }

  async write(offsetBytes: number, data: Buffer, options: { fua?: boolean } = {}): Promise<void> {
    await this.request(NbdCmd.WRITE, options.fua ? NBD_CMD_FLAG_FUA : 0, offsetBytes, data.length, data);
  }

  async flush(): Promise<void> {
    await this.request(NbdCmd.FLUSH, 0, 0, 0);
  }

  async trim(offsetBytes: number, lengthBytes: number, options: { fua?: boolean } = {}): Promise<void> {
    await this.request(NbdCmd.TRIM, options.fua ? NBD_CMD_FLAG_FUA : 0, offsetBytes, lengthBytes);
  }

  async writeZeroes(
    offsetBytes: number,
    lengthBytes: number,
    options: { fua?: boolean; noHole?: boolean } = {},
  ): Promise<void> {
    const flags = (options.fua ? NBD_CMD_FLAG_FUA : 0) | (options.noHole ? NBD_CMD_FLAG_NO_HOLE : 0);
    await this.request(NbdCmd.WRITE_ZEROES, flags, offsetBytes, lengthBytes);
  }

  /** base:allocation descriptors from offsetBytes (they may cover less than lengthBytes). */
  blockStatus(
    offsetBytes: number,
    lengthBytes: number,
    options: { reqOne?: boolean } = {},
  ): Promise<BlockStatusDescriptor[]> {
    if (this.baseAllocationId === null)
      return Promise.reject(
        new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          'base:allocation was not negotiated; connect with blockStatus: true',
        ),
      );
    return this.request(
      NbdCmd.BLOCK_STATUS,
      options.reqOne ? NBD_CMD_FLAG_REQ_ONE : 0,
      offsetBytes,
      lengthBytes,
    ) as Promise<BlockStatusDescriptor[]>;
  }

  /**
   * Sends any request as given (also malformed ones, for tests). Resolves with the read data, the
   * block status descriptors, or undefined; rejects with the NBD error.
   */
  request(
    type: number,
    flags: number,
    offsetBytes: number | bigint,
    lengthBytes: number,
    payload?: Buffer,
  ): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing)
      return Promise.reject(
        new SecondsiteError('SECONDSITE_ERR_INVALID_STATE', 'the NBD client is closing; open a new one'),
      );
    const cookie = this.nextCookie++;
    const offset = typeof offsetBytes === 'bigint' ? offsetBytes : BigInt(offsetBytes);
    const h = Buffer.allocUnsafe(NBD_REQUEST_HEADER_BYTES);
    h.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    h.writeUInt32BE(Math.floor(cookie / 0x100000000), 8);
    h.writeUInt32BE(cookie >>> 0, 12);
    h.writeBigUInt64BE(offset, 16);
    h.writeUInt32BE(lengthBytes, 24);
    return new Promise((resolve, reject) => {
      this.pending.set(cookie, {
        type,
        offset: Number(offset),
        length: lengthBytes,
        data: null,
        coveredBytes: 0,
        descriptors: null,
        error: null,
        resolve,
        reject,
      });
      if (!this.corked) {
        this.corked = true;
        this.socket.cork();
        process.nextTick(() => {
          this.corked = false;
          this.socket.uncork();
        });
      }
      this.socket.write(h);
      if (payload && payload.length > 0) this.socket.write(payload);
    });
  }

  /** Soft disconnect: waits for in-flight requests, sends NBD_CMD_DISC, closes. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true; // new requests are refused from here on
    if (this.pending.size > 0) await new Promise<void>((r) => this.drainWaiters.push(r));
    if (!this.failure && !this.socket.destroyed) {
      const h = Buffer.alloc(NBD_REQUEST_HEADER_BYTES);
      h.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
      h.writeUInt16BE(NbdCmd.DISC, 6);
      await new Promise<void>((resolve) => this.socket.end(h, () => resolve()));
    }
    this.socket.destroy();
  }

  private settle(cookie: number): void {
    this.pending.delete(cookie);
    if (this.pending.size === 0 && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  private push(c: Buffer): void {
    this.queue.push(c);
  }

  private parse(): void {
    while (!this.failure) {
      if (!this.header) {
        if (this.queue.bytes < 4) return;
        const need = replyHeaderBytes(this.queue.peekU32());
        if (need === 0) return this.protocolFailure('bad reply magic');
        if (this.queue.bytes < need) return;
        this.header = decodeReplyHeader(this.queue.take(need));
      }
      const h = this.header;
      const cookie = Number(h.cookie);
      const p = this.pending.get(cookie);
      if (!p) return this.protocolFailure(`reply for unknown cookie ${h.cookie}`);
      if (!h.structured) {
        if (this.structuredReplies && p.type === NbdCmd.READ)
          return this.protocolFailure('simple reply to a READ');
        const dataBytes = p.type === NbdCmd.READ && h.errno === 0 ? p.length : 0;
        if (this.queue.bytes < dataBytes) return;
        const data = dataBytes > 0 ? this.queue.take(dataBytes) : null;
        this.header = null;
        this.settle(cookie);
        if (h.errno !== 0) p.reject(nbdRequestError(h.errno, '', p.type));
        else p.resolve(p.type === NbdCmd.READ ? (data ?? Buffer.alloc(0)) : undefined);
        continue;
      }
      if (!this.structuredReplies) return this.protocolFailure('structured reply that was not negotiated');
      const limit =
        p.type === NbdCmd.BLOCK_STATUS ? 4 + 8 * Math.min(p.length, 1 << 22) : p.length + 8 + 4096 + 16;
      if (h.lengthBytes > limit)
        return this.protocolFailure(`chunk of ${h.lengthBytes} bytes for a ${p.length}-byte request`);
      if (this.queue.bytes < h.lengthBytes) return;
      const body = this.queue.take(h.lengthBytes);
      this.header = null;
      const problem = this.applyChunk(p, h.type, body);
      if (problem) return this.protocolFailure(problem);
      if ((h.flags & NBD_REPLY_FLAG_DONE) !== 0) {
        this.settle(cookie);
        this.complete(p);
      }
    }
  }

  private applyChunk(p: Pending, type: number, body: Buffer): string | null {
    switch (type) {
      case NbdReplyType.NONE:
        return body.length === 0 ? null : 'NONE chunk with a payload';
      case NbdReplyType.OFFSET_DATA:
      case NbdReplyType.OFFSET_HOLE: {
        if (p.type !== NbdCmd.READ) return 'content chunk for a non-READ request';
        const isHole = type === NbdReplyType.OFFSET_HOLE;
        if (isHole ? body.length !== 12 : body.length < 9) return 'content chunk of the wrong length';
        const off = body.readBigUInt64BE(0);
        const len = isHole ? body.readUInt32BE(8) : body.length - 8;
        const rel = off - BigInt(p.offset);
        if (rel < 0n || rel + BigInt(len) > BigInt(p.length) || len === 0)
          return 'content chunk outside the request';
        const at = Number(rel);
        if (!isHole && at === 0 && len === p.length && p.data === null) p.data = body.subarray(8);
        else {
          p.data ??= Buffer.alloc(p.length);
          if (isHole) p.data.fill(0, at, at + len);
          else body.copy(p.data, at, 8);
        }
        p.coveredBytes += len;
        return null;
      }
      case NbdReplyType.BLOCK_STATUS: {
        if (p.type !== NbdCmd.BLOCK_STATUS) return 'block status chunk for another command';
        if (body.length < 12 || (body.length - 4) % 8 !== 0) return 'block status chunk of the wrong length';
        if (body.readUInt32BE(0) !== this.baseAllocationId) return 'block status for an unknown context';
        const out: BlockStatusDescriptor[] = [];
        let sum = 0;
        for (let pos = 4; pos < body.length; pos += 8) {
          const lengthBytes = body.readUInt32BE(pos);
          if (lengthBytes === 0) return 'zero-length block status descriptor';
          sum += lengthBytes;
          out.push({ lengthBytes, status: body.readUInt32BE(pos + 4) });
        }
        if (sum > p.length) return 'block status descriptors cover more than the request';
        p.descriptors = out;
        return null;
      }
      default: {
        if ((type & 0x8000) === 0) return `unknown chunk type ${type}`;
        if (body.length < 6) return 'error chunk too short';
        const msgLen = body.readUInt16BE(4);
        if (msgLen > body.length - 6) return 'error chunk message overruns the chunk';
        const errno = body.readUInt32BE(0);
        p.error ??= {
          errno: errno === 0 ? NbdErrno.EIO : errno,
          message: body.toString('utf8', 6, 6 + msgLen),
        };
        return null;
      }
    }
  }

  private complete(p: Pending): void {
    if (p.error) return p.reject(nbdRequestError(p.error.errno, p.error.message, p.type));
    if (p.type === NbdCmd.READ) {
      if (p.coveredBytes !== p.length) return this.protocolFailure('READ reply does not cover the request');
      return p.resolve(p.data ?? Buffer.alloc(p.length));
    }
    if (p.type === NbdCmd.BLOCK_STATUS) {
      if (!p.descriptors) return this.protocolFailure('BLOCK_STATUS reply without descriptors');
      return p.resolve(p.descriptors);
    }
    p.resolve(undefined);
  }

  private protocolFailure(reason: string): void {
    this.fail(new SecondsiteError('SECONDSITE_ERR_PROTOCOL', `NBD server broke the protocol: ${reason}`));
    this.socket.destroy();
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    const pending = [...this.pending.entries()];
    for (const [cookie, p] of pending) {
      this.settle(cookie);
      p.reject(e);
    }
    this.queue.clear();
  }
}

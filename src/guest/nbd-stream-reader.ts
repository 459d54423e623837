/**
 * Exact-length reads from a socket during the client handshake. A read rejects when the socket ends or
 * errors first (SECONDSITE_ERR_CONNECTION_LOST), so a server that vanishes mid-handshake is an error,
 * never a hang or an assertion (CVE-2021-20286 shape).
 */
import type { Socket } from 'node:net';
import { SecondsiteError } from '../domain/errors.js';

export class StreamReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private pending: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private ended: Error | null = null;
  private readonly onData = (c: Buffer): void => {
    this.chunks.push(c);
    this.buffered += c.length;
    this.pump();
  };
  private readonly onEnd = (): void => this.fail('the NBD server closed the connection during the handshake');
  private readonly onError = (e: Error): void =>
    this.fail(`NBD connection error during the handshake: ${e.message}`);

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  readExact(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.pending = { n, resolve, reject };
      this.pump();
    });
  }

  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    const rest = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [];
    this.buffered = 0;
    return rest;
  }

  private fail(message: string): void {
    this.ended ??= new SecondsiteError('SECONDSITE_ERR_CONNECTION_LOST', message);
    this.pump();
  }

  private pump(): void {
    const p = this.pending;
    if (!p) return;
    if (this.buffered >= p.n) {
      this.pending = null;
      const all = Buffer.concat(this.chunks, this.buffered);
      this.chunks = all.length > p.n ? [all.subarray(p.n)] : [];
      this.buffered -= p.n;
      p.resolve(all.subarray(0, p.n));
    } else if (this.ended) {
      this.pending = null;
      p.reject(this.ended);
    }
  }
}

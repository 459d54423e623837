/**
 * A hand-driven replication client for attack and malformed-input tests: it speaks frames built by
 * hand (any seq, epoch, flags or payload bytes, including forged ones) over a real TLS connection and
 * reads the receiver's answers with the plain frame parser (no session rules).
 */
import { createHash } from 'node:crypto';
import { connect } from 'node:tls';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import {
  FRAME_MAGIC,
  FrameReader,
  HEADER_BYTES,
  encodeFrame,
  relationshipKeyOf,
} from '../../src/protocol/replication/frame-codec.js';
import type { Frame } from '../../src/protocol/replication/frame-codec.js';
import { FRAME_TYPES, encodeMessage } from '../../src/protocol/replication/messages.js';
import type { Message, MessageKind } from '../../src/protocol/replication/messages.js';
import type { TlsIdentity } from '../../src/host/pki/tls-config.js';
import { replicationClientOptions } from '../../src/host/pki/tls-config.js';

/** Builds a frame by hand: header fields and payload bytes exactly as given (checksums computed). */
export function buildFrame(h: {
  type: number;
  flags?: number;
  key: Buffer;
  epoch: number;
  seq: number;
  payload: Buffer;
  payloadLength?: number;
}): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32BE(FRAME_MAGIC, 0);
  header.writeUInt16BE(1, 4);
  header.writeUInt8(h.type, 6);
  header.writeUInt8(h.flags ?? 0, 7);
  h.key.copy(header, 8);
  header.writeBigUInt64BE(BigInt(h.epoch), 24);
  header.writeBigUInt64BE(BigInt(h.seq), 32);
  header.writeUInt32BE(h.payloadLength ?? h.payload.length, 40);
  createHash('sha256').update(h.payload).digest().copy(header, 44, 0, 16);
  createHash('sha256').update(header.subarray(0, 60)).digest().copy(header, 60, 0, 8);
  return Buffer.concat([header, h.payload]);
}

export class RawPeer {
  seq = 0;
  epoch = 1;
  readonly key: Buffer;
  private readonly reader = new FrameReader();
  private readonly frames: Frame[] = [];
  private waiters: Array<() => void> = [];
  closed = false;
  readonly closedPromise: Promise<void>;

  private constructor(
    readonly socket: TLSSocket,
    relationshipId: string,
  ) {
    this.key = relationshipKeyOf(relationshipId);
    socket.on('data', (b: Buffer) => {
      this.reader.push(b);
      for (let f = this.reader.next(); f; f = this.reader.next()) this.frames.push(f);
      this.wake();
    });
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      });
    });
    socket.on('error', () => {});
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  static connectWith(port: number, options: ConnectionOptions, relationshipId = 'vm-raw'): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, ...options });
      s.once('secureConnect', () => resolve(new RawPeer(s, relationshipId)));
      s.once('error', reject);
    });
  }

  static connect(port: number, id: TlsIdentity, relationshipId = 'vm-raw'): Promise<RawPeer> {
    return RawPeer.connectWith(port, replicationClientOptions(id, 'host-b'), relationshipId);
  }

  /** Sends a well-formed frame with the next seq (overrides allowed). */
  send(m: Message, o: { seq?: number; epoch?: number; flags?: number } = {}): void {
    const seq = o.seq ?? this.seq + 1;
    this.seq = Math.max(this.seq, seq);
    for (const p of encodeFrame(
      { relationshipKey: this.key, epoch: o.epoch ?? this.epoch, seq, flags: o.flags ?? 0 },
      m,
    )) {
      this.socket.write(p);
    }
  }

  /** Sends a hand-built payload for `kind` with the next seq. */
  sendPayload(kind: MessageKind, payload: Buffer, o: { flags?: number } = {}): void {
    this.seq++;
    this.socket.write(
      buildFrame({ type: FRAME_TYPES[kind], key: this.key, epoch: this.epoch, seq: this.seq, payload, ...o }),
    );
  }

  payloadOf(m: Message): Buffer {
    return Buffer.concat(encodeMessage(m));
  }

  /** The next frame from the receiver, or null when the connection closed first. */
  async next(timeoutMs = 5000): Promise<Frame | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0) {
      if (this.closed) return null;
      if (Date.now() > deadline) throw new Error('no frame from the receiver in time');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return this.frames.shift() ?? null;
  }

  /** Reads frames until an ERROR frame (returned) or close (null). */
  async nextError(timeoutMs = 5000): Promise<{ code: string; message: string } | null> {
    for (;;) {
      const f = await this.next(timeoutMs);
      if (!f) return null;
      if (f.message.kind === 'error') return f.message;
    }
  }

  async hello(
    disks: Array<{ diskId: string; sizeBytes: number }>,
    relationshipId = 'vm-raw',
  ): Promise<Frame | null> {
    this.send({
      kind: 'hello',
      retentionHours: 24,
      vmConfig: '',
      primaryHostId: 'host-a',
      relationshipId,
      storageLocation: 'gold',
      disks,
    });
    return this.next();
  }

  end(): void {
    this.socket.end();
  }
}

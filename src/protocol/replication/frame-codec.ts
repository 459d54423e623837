/**
 * Replication framing, version 1. Every frame is a 68-byte header plus a payload:
 *
 *   offset size field
 *        0    4 magic 'SSRP' (0x53535250)
 *        4    2 version (1)
 *        6    1 type (messages.ts FRAME_TYPES)
 *        7    1 flags (bit 0: SYNC, the receiver syncs staging and acks after this frame)
 *        8   16 relationshipKey (first 16 bytes of SHA-256 of the relationship id)
 *       24    8 epoch
 *       32    8 seq (per connection and direction, starts at 1, +1 per frame)
 *       40    4 payload length (<= MAX_PAYLOAD_BYTES)
 *       44   16 payload checksum (first 16 bytes of SHA-256 of the checked part of the payload)
 *       60    8 header checksum (first 8 bytes of SHA-256 of bytes 0..59)
 *
 * All integers big-endian. `FrameReader` is a push parser that checks the header completely (and lets
 * the caller check epoch/seq/relationship through `onHeader`) before it waits for, or allocates, the
 * payload; then it checks the payload checksum and decodes the message strictly.
 *
 * The payload checksum covers the whole payload of every frame but DATA. In a DATA frame it covers
 * the fields (DATA_FIELDS_BYTES: disk, offset, length, compression and the chunk's SHA-256), not the
 * body: the body is covered end to end by that SHA-256, which the receiver checks on the uncompressed
 * bytes before anything is staged, so hashing it twice per side bought nothing (version 2; version 1
 * hashed the body too). A corrupted LZ4 body can only reach a bounds-checked decoder whose output size
 * the size prefix pins to the declared length (<= 16 MiB), and its checksum then fails.
 */
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { SecondsiteError } from '../../domain/errors.js';
import {
  DATA_FIELDS_BYTES,
  FRAME_TYPES,
  MAX_CHUNK_BYTES,
  decodeMessage,
  encodeMessage,
  kindOfType,
} from './messages.js';
import type { Message, MessageKind } from './messages.js';

export const FRAME_MAGIC = 0x53535250;
export const PROTOCOL_VERSION = 2;
export const HEADER_BYTES = 68;
/** Largest payload: a maximal DATA chunk plus room for its fields. */
export const MAX_PAYLOAD_BYTES = MAX_CHUNK_BYTES + 64 * 1024;
export const FLAG_SYNC = 0x01;
const KNOWN_FLAGS = FLAG_SYNC;

export interface FrameHeader {
  readonly kind: MessageKind;
  readonly flags: number;
  readonly relationshipKey: Buffer;
  readonly epoch: number;
  readonly seq: number;
  readonly payloadLength: number;
}

export interface Frame {
  readonly header: FrameHeader;
  readonly message: Message;
}

/** The 16-byte key that stands for a relationship id in every header. */
export function relationshipKeyOf(relationshipId: string): Buffer {
  return createHash('sha256').update(relationshipId, 'utf8').digest().subarray(0, 16);
}

function bad(message: string, details: Record<string, unknown> = {}): SecondsiteError {
  return new SecondsiteError('SECONDSITE_ERR_BAD_FRAME', message, details);
}

/** Encodes one frame as buffers to write in order (the DATA body is not copied). */
export function encodeFrame(
  h: { relationshipKey: Buffer; epoch: number; seq: number; flags?: number },
  message: Message,
): Buffer[] {
  const parts = encodeMessage(message);
  let length = 0;
  for (const p of parts) length += p.length;
  const sum = createHash('sha256');
  let toSum = checkedPayloadBytes(message.kind, length);
  for (const p of parts) {
    if (toSum <= 0) break;
    sum.update(p.length <= toSum ? p : p.subarray(0, toSum));
    toSum -= p.length;
  }
  if (length > MAX_PAYLOAD_BYTES)
    throw new RangeError(`payload of ${length} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
  if (h.relationshipKey.length !== 16) throw new RangeError('relationshipKey must be 16 bytes');
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32BE(FRAME_MAGIC, 0);
  header.writeUInt16BE(PROTOCOL_VERSION, 4);
  header.writeUInt8(FRAME_TYPES[message.kind], 6);
  header.writeUInt8(h.flags ?? 0, 7);
  h.relationshipKey.copy(header, 8);
  header.writeBigUInt64BE(BigInt(h.epoch), 24);
  header.writeBigUInt64BE(BigInt(h.seq), 32);
  header.writeUInt32BE(length, 40);
  sum.digest().copy(header, 44, 0, 16);
  createHash('sha256').update(header.subarray(0, 60)).digest().copy(header, 60, 0, 8);
  return [header, ...parts];
}

/**
 * How much of a payload of `payloadBytes` the payload checksum covers: all of it, except for DATA
 * frames, whose body is covered by the end-to-end chunk checksum (see the design comment above).
 */
export function checkedPayloadBytes(kind: MessageKind, payloadBytes: number): number {
  return kind === 'data' ? Math.min(DATA_FIELDS_BYTES, payloadBytes) : payloadBytes;
}

/** Parses and checks a header (everything that can be checked without context). */
export function decodeHeader(buf: Buffer): FrameHeader & { payloadChecksum: Buffer } {
  if (buf.length < HEADER_BYTES) throw bad('short header');
  const magic = buf.readUInt32BE(0);
  if (magic !== FRAME_MAGIC)
    throw bad(`bad magic 0x${magic.toString(16)}: not a secondsite replication frame`);
  const expected = createHash('sha256').update(buf.subarray(0, 60)).digest().subarray(0, 8);
  if (!expected.equals(buf.subarray(60, 68)))
    throw bad('header checksum mismatch: frame corrupted or forged');
  const version = buf.readUInt16BE(4);
  if (version !== PROTOCOL_VERSION) {
    throw bad(
      `protocol version ${version} not supported (this host speaks ${PROTOCOL_VERSION}); upgrade both hosts`,
    );
  }
  const type = buf.readUInt8(6);
  const kind = kindOfType(type);
  if (kind === undefined) throw bad(`unknown frame type ${type}`, { type });
  const flags = buf.readUInt8(7);
  if ((flags & ~KNOWN_FLAGS) !== 0) throw bad(`unknown flags 0x${flags.toString(16)}`, { flags });
  const epoch = buf.readBigUInt64BE(24);
  const seq = buf.readBigUInt64BE(32);
  if (epoch > BigInt(Number.MAX_SAFE_INTEGER) || seq > BigInt(Number.MAX_SAFE_INTEGER))
    throw bad('epoch or seq beyond 2^53-1');
  const payloadLength = buf.readUInt32BE(40);
  if (payloadLength > MAX_PAYLOAD_BYTES) {
    throw bad(`payload length ${payloadLength} exceeds the cap of ${MAX_PAYLOAD_BYTES}`, { payloadLength });
  }
  return {
    kind,
    flags,
    relationshipKey: Buffer.from(buf.subarray(8, 24)),
    epoch: Number(epoch),
    seq: Number(seq),
    payloadLength,
    payloadChecksum: Buffer.from(buf.subarray(44, 60)),
  };
}

/**
 * Push parser. `push()` bytes as they arrive; `next()` returns the next complete frame, or null when
 * more bytes are needed; both throw SecondsiteError on the first bad byte (the caller must then close
 * the connection: the reader stays failed). `onHeader` runs before the payload is awaited.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header: (FrameHeader & { payloadChecksum: Buffer }) | null = null;
  private failed: Error | null = null;

  constructor(private readonly onHeader: (h: FrameHeader) => void = () => {}) {}

  /** Bytes received but not yet part of a returned frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** True while a frame is partly received (a clean EOF is only possible at a frame boundary). */
  get midFrame(): boolean {
    return this.buffered > 0 || this.header !== null;
  }

  push(chunk: Buffer): void {
    if (this.failed) throw this.failed;
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  private take(n: number): Buffer {
    let out: Buffer;
    const first = this.chunks[0];
    if (first && first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n); // n is checked against the cap and the bytes buffered
      let at = 0;
      while (at < n) {
        const c = this.chunks[0] as Buffer;
        const k = Math.min(c.length, n - at);
        c.copy(out, at, 0, k);
        at += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= n;
    return out;
  }

  next(): Frame | null {
    if (this.failed) throw this.failed;
    try {
      if (this.header === null) {
        if (this.buffered < HEADER_BYTES) return null;
        const h = decodeHeader(this.take(HEADER_BYTES));
        this.onHeader(h);
        this.header = h;
      }
      const h = this.header;
      if (this.buffered < h.payloadLength) return null;
      const payload = this.take(h.payloadLength);
      this.header = null;
      const checked = payload.subarray(0, checkedPayloadBytes(h.kind, payload.length));
      const sum = createHash('sha256').update(checked).digest().subarray(0, 16);
      if (!sum.equals(h.payloadChecksum))
        throw bad(`${h.kind} frame seq ${h.seq}: payload checksum mismatch`);
      const message = decodeMessage(h.kind, payload);
      const { payloadChecksum: _, ...header } = h;
      return { header, message };
    } catch (e) {
      this.failed = e instanceof Error ? e : new Error(String(e));
      throw this.failed;
    }
  }
}

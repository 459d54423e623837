/**
 * Pure encode/decode of NBD transmission messages: the 28-byte request header, simple replies and
 * structured reply chunks. The cookie (handle) is carried as two u32 halves so the hot path does not
 * allocate a BigInt for it; offsets are BigInt because they are validated with 64-bit arithmetic.
 */
import { Buffer } from 'node:buffer';
import {
  NBD_REPLY_FLAG_DONE,
  NBD_REQUEST_HEADER_BYTES,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_HEADER_BYTES,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_HEADER_BYTES,
  NBD_STRUCTURED_REPLY_MAGIC,
  NbdReplyType,
} from './nbd-constants.js';

export interface RequestHeader {
  magic: number;
  flags: number;
  type: number;
  cookieHi: number;
  cookieLo: number;
  offset: bigint;
  lengthBytes: number;
}

export function decodeRequestHeader(b: Buffer, pos = 0): RequestHeader {
  return {
    magic: b.readUInt32BE(pos),
    flags: b.readUInt16BE(pos + 4),
    type: b.readUInt16BE(pos + 6),
    cookieHi: b.readUInt32BE(pos + 8),
    cookieLo: b.readUInt32BE(pos + 12),
    offset: b.readBigUInt64BE(pos + 16),
    lengthBytes: b.readUInt32BE(pos + 24),
  };
}

export function encodeRequestHeader(
  out: Buffer,
  pos: number,
  flags: number,
  type: number,
  cookie: bigint,
  offset: bigint,
  lengthBytes: number,
): void {
  out.writeUInt32BE(NBD_REQUEST_MAGIC, pos);
  out.writeUInt16BE(flags, pos + 4);
  out.writeUInt16BE(type, pos + 6);
  out.writeBigUInt64BE(cookie, pos + 8);
  out.writeBigUInt64BE(offset, pos + 16);
  out.writeUInt32BE(lengthBytes, pos + 24);
}

export const REQUEST_HEADER_BYTES = NBD_REQUEST_HEADER_BYTES;

export function encodeSimpleReply(errno: number, cookieHi: number, cookieLo: number): Buffer {
  const b = Buffer.allocUnsafe(NBD_SIMPLE_REPLY_HEADER_BYTES);
  b.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(errno, 4);
  b.writeUInt32BE(cookieHi, 8);
  b.writeUInt32BE(cookieLo, 12);
  return b;
}

function writeChunkHeader(
  b: Buffer,
  flags: number,
  type: number,
  cookieHi: number,
  cookieLo: number,
  lengthBytes: number,
): void {
  b.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeUInt32BE(cookieHi, 8);
  b.writeUInt32BE(cookieLo, 12);
  b.writeUInt32BE(lengthBytes, 16);
}

/** Header of a final OFFSET_DATA chunk (20 + 8 bytes); the data follows it on the wire. */
export function encodeDataChunkHeader(
  cookieHi: number,
  cookieLo: number,
  offset: bigint,
  dataBytes: number,
): Buffer {
  const b = Buffer.allocUnsafe(NBD_STRUCTURED_REPLY_HEADER_BYTES + 8);
  writeChunkHeader(b, NBD_REPLY_FLAG_DONE, NbdReplyType.OFFSET_DATA, cookieHi, cookieLo, 8 + dataBytes);
  b.writeBigUInt64BE(offset, 20);
  return b;
}

/** A final OFFSET_HOLE chunk. */
export function encodeHoleChunk(
  cookieHi: number,
  cookieLo: number,
  offset: bigint,
  holeBytes: number,
): Buffer {
  const b = Buffer.allocUnsafe(NBD_STRUCTURED_REPLY_HEADER_BYTES + 12);
  writeChunkHeader(b, NBD_REPLY_FLAG_DONE, NbdReplyType.OFFSET_HOLE, cookieHi, cookieLo, 12);
  b.writeBigUInt64BE(offset, 20);
  b.writeUInt32BE(holeBytes, 28);
  return b;
}

/** A final NONE chunk (success without payload). */
export function encodeNoneChunk(cookieHi: number, cookieLo: number): Buffer {
  const b = Buffer.allocUnsafe(NBD_STRUCTURED_REPLY_HEADER_BYTES);
  writeChunkHeader(b, NBD_REPLY_FLAG_DONE, NbdReplyType.NONE, cookieHi, cookieLo, 0);
  return b;
}

/** A final ERROR chunk with a human-readable message (truncated to fit 4096 bytes). */
export function encodeErrorChunk(cookieHi: number, cookieLo: number, errno: number, message: string): Buffer {
  const msg = Buffer.from(message, 'utf8').subarray(0, 4096);
  const b = Buffer.alloc(NBD_STRUCTURED_REPLY_HEADER_BYTES + 6 + msg.length);
  writeChunkHeader(b, NBD_REPLY_FLAG_DONE, NbdReplyType.ERROR, cookieHi, cookieLo, 6 + msg.length);
  b.writeUInt32BE(errno, 20);
  b.writeUInt16BE(msg.length, 24);
  msg.copy(b, 26);
  return b;
}

export interface StatusDescriptor {
  lengthBytes: number;
  status: number;
}

/** A final BLOCK_STATUS chunk for one context. */
export function encodeBlockStatusChunk(
  cookieHi: number,
  cookieLo: number,
  contextId: number,
  descriptors: readonly StatusDescriptor[],
): Buffer {
  const len = 4 + 8 * descriptors.length;
  const b = Buffer.allocUnsafe(NBD_STRUCTURED_REPLY_HEADER_BYTES + len);
  writeChunkHeader(b, NBD_REPLY_FLAG_DONE, NbdReplyType.BLOCK_STATUS, cookieHi, cookieLo, len);
  b.writeUInt32BE(contextId, 20);
  let pos = 24;
  for (const d of descriptors) {
    b.writeUInt32BE(d.lengthBytes, pos);
    b.writeUInt32BE(d.status, pos + 4);
    pos += 8;
  }
  return b;
}

export interface ReplyHeader {
  structured: boolean;
  magicOk: boolean;
  /** Simple replies: errno. */
  errno: number;
  /** Structured replies: chunk flags, type and payload length. */
  flags: number;
  type: number;
  lengthBytes: number;
  cookie: bigint;
}

/** Bytes needed to decode the reply header that starts with `magic`: 16 (simple), 20 (structured), 0 (bad). */
export function replyHeaderBytes(magic: number): number {
  if (magic === NBD_SIMPLE_REPLY_MAGIC) return NBD_SIMPLE_REPLY_HEADER_BYTES;
  if (magic === NBD_STRUCTURED_REPLY_MAGIC) return NBD_STRUCTURED_REPLY_HEADER_BYTES;
  return 0;
}

export function decodeReplyHeader(b: Buffer): ReplyHeader {
  const magic = b.readUInt32BE(0);
  if (magic === NBD_SIMPLE_REPLY_MAGIC)
    return {
      structured: false,
      magicOk: true,
      errno: b.readUInt32BE(4),
      flags: 0,
      type: 0,
      lengthBytes: 0,
      cookie: b.readBigUInt64BE(8),
    };
  return {
    structured: true,
    magicOk: magic === NBD_STRUCTURED_REPLY_MAGIC,
    errno: 0,
    flags: b.readUInt16BE(4),
    type: b.readUInt16BE(6),
    cookie: b.readBigUInt64BE(8),
    lengthBytes: b.readUInt32BE(16),
  };
}

/**
 * Pure encode/decode of NBD handshake structures: the greeting, option headers and option replies, the
 * INFO/GO and META_CONTEXT payloads. Decoders never trust an inner length: every u32 length is compared
 * with the bytes that remain and with NBD_MAX_STRING_BYTES before anything is sliced (CVE-2022-26495).
 */
import { Buffer } from 'node:buffer';
import {
  NBD_BLOCK_SIZE_MAX,
  NBD_BLOCK_SIZE_MIN,
  NBD_BLOCK_SIZE_PREFERRED,
  NBD_IHAVEOPT,
  NBD_MAGIC,
  NBD_MAX_INFO_REQUESTS,
  NBD_MAX_META_QUERIES,
  NBD_MAX_STRING_BYTES,
  NBD_OPTION_HEADER_BYTES,
  NBD_OPTION_REPLY_HEADER_BYTES,
  NBD_OPTION_REPLY_MAGIC,
  NbdInfo,
  NbdRep,
} from './nbd-constants.js';

/** Server greeting: NBDMAGIC, IHAVEOPT, handshake flags u16. */
export function encodeGreeting(handshakeFlags: number): Buffer {
  const b = Buffer.alloc(18);
  b.writeBigUInt64BE(NBD_MAGIC, 0);
  b.writeBigUInt64BE(NBD_IHAVEOPT, 8);
  b.writeUInt16BE(handshakeFlags, 16);
  return b;
}

export interface OptionHeader {
  magicOk: boolean;
  option: number;
  lengthBytes: number;
}

export function decodeOptionHeader(b: Buffer): OptionHeader {
  return {
    magicOk: b.readBigUInt64BE(0) === NBD_IHAVEOPT,
    option: b.readUInt32BE(8),
    lengthBytes: b.readUInt32BE(12),
  };
}

export function encodeOptionHeader(option: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(NBD_OPTION_HEADER_BYTES + payload.length);
  b.writeBigUInt64BE(NBD_IHAVEOPT, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(payload.length, 12);
  payload.copy(b, NBD_OPTION_HEADER_BYTES);
  return b;
}

export function encodeOptionReply(option: number, replyType: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(NBD_OPTION_REPLY_HEADER_BYTES + data.length);
  b.writeBigUInt64BE(NBD_OPTION_REPLY_MAGIC, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(replyType >>> 0, 12);
  b.writeUInt32BE(data.length, 16);
  data.copy(b, NBD_OPTION_REPLY_HEADER_BYTES);
  return b;
}

export interface OptionReplyHeader {
  magicOk: boolean;
  option: number;
  replyType: number;
  lengthBytes: number;
}

export function decodeOptionReplyHeader(b: Buffer): OptionReplyHeader {
  return {
    magicOk: b.readBigUInt64BE(0) === NBD_OPTION_REPLY_MAGIC,
    option: b.readUInt32BE(8),
    replyType: b.readUInt32BE(12),
    lengthBytes: b.readUInt32BE(16),
  };
}

export function encodeErrorReply(option: number, replyType: number, message: string): Buffer {
  return encodeOptionReply(option, replyType, Buffer.from(message, 'utf8'));
}

/** NBD_REP_INFO / NBD_INFO_EXPORT: size u64, transmission flags u16. */
export function encodeInfoExport(option: number, sizeBytes: number, transmissionFlags: number): Buffer {
  const d = Buffer.alloc(12);
  d.writeUInt16BE(NbdInfo.EXPORT, 0);
  d.writeBigUInt64BE(BigInt(sizeBytes), 2);
  d.writeUInt16BE(transmissionFlags, 10);
  return encodeOptionReply(option, NbdRep.INFO, d);
}

export function encodeInfoBlockSize(
  option: number,
  minBytes = NBD_BLOCK_SIZE_MIN,
  preferredBytes = NBD_BLOCK_SIZE_PREFERRED,
  maxBytes = NBD_BLOCK_SIZE_MAX,
): Buffer {
  const d = Buffer.alloc(14);
  d.writeUInt16BE(NbdInfo.BLOCK_SIZE, 0);
  d.writeUInt32BE(minBytes, 2);
  d.writeUInt32BE(preferredBytes, 6);
  d.writeUInt32BE(maxBytes, 10);
  return encodeOptionReply(option, NbdRep.INFO, d);
}

export function encodeInfoString(option: number, infoType: number, text: string): Buffer {
  const s = Buffer.from(text, 'utf8');
  const d = Buffer.alloc(2 + s.length);
  d.writeUInt16BE(infoType, 0);
  s.copy(d, 2);
  return encodeOptionReply(option, NbdRep.INFO, d);
}

/** NBD_REP_SERVER: name length u32, name, optional description. */
export function encodeServerReply(option: number, name: string, description = ''): Buffer {
  const n = Buffer.from(name, 'utf8');
  const desc = Buffer.from(description, 'utf8');
  const d = Buffer.alloc(4 + n.length + desc.length);
  d.writeUInt32BE(n.length, 0);
  n.copy(d, 4);
  desc.copy(d, 4 + n.length);
  return encodeOptionReply(option, NbdRep.SERVER, d);
}

export function encodeMetaContextReply(option: number, contextId: number, name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const d = Buffer.alloc(4 + n.length);
  d.writeUInt32BE(contextId, 0);
  n.copy(d, 4);
  return encodeOptionReply(option, NbdRep.META_CONTEXT, d);
}

/** Reply to NBD_OPT_EXPORT_NAME: size u64, flags u16, and 124 zero bytes unless NO_ZEROES. */
export function encodeExportNameReply(
  sizeBytes: number,
  transmissionFlags: number,
  noZeroes: boolean,
): Buffer {
  const b = Buffer.alloc(noZeroes ? 10 : 134);
  b.writeBigUInt64BE(BigInt(sizeBytes), 0);
  b.writeUInt16BE(transmissionFlags, 8);
  return b;
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Reads a u32-length-prefixed string at `pos`, bounded by the buffer and the string cap. */
function readString(b: Buffer, pos: number, what: string): Decoded<{ text: string; next: number }> {
  if (pos + 4 > b.length) return { ok: false, reason: `${what} length is missing` };
  const len = b.readUInt32BE(pos);
  if (len > NBD_MAX_STRING_BYTES)
    return { ok: false, reason: `${what} is ${len} bytes, over the 4096-byte limit` };
  if (len > b.length - pos - 4)
    return { ok: false, reason: `${what} length ${len} is larger than the option` };
  return checkText(b.subarray(pos + 4, pos + 4 + len), what, pos + 4 + len);
}

function checkText(raw: Buffer, what: string, next: number): Decoded<{ text: string; next: number }> {
  if (raw.includes(0)) return { ok: false, reason: `${what} contains a NUL byte` };
  const text = raw.toString('utf8');
  if (Buffer.byteLength(text, 'utf8') !== raw.length)
    return { ok: false, reason: `${what} is not valid UTF-8` };
  return { ok: true, value: { text, next } };
}

/** Export name of NBD_OPT_EXPORT_NAME: the whole payload. */
export function decodeExportNamePayload(b: Buffer): Decoded<string> {
  if (b.length > NBD_MAX_STRING_BYTES) return { ok: false, reason: 'export name over 4096 bytes' };
  const r = checkText(b, 'export name', b.length);
  return r.ok ? { ok: true, value: r.value.text } : r;
}

export interface GoRequest {
  exportName: string;
  infoRequests: number[];
}

/** NBD_OPT_INFO / NBD_OPT_GO payload: name (u32 len), u16 count, count x u16 info types. */
export function decodeGoPayload(b: Buffer): Decoded<GoRequest> {
  const name = readString(b, 0, 'export name');
  if (!name.ok) return name;
  let pos = name.value.next;
  if (pos + 2 > b.length) return { ok: false, reason: 'information request count is missing' };
  const count = b.readUInt16BE(pos);
  pos += 2;
  if (count > NBD_MAX_INFO_REQUESTS) return { ok: false, reason: `${count} information requests, limit 16` };
  if (pos + count * 2 !== b.length)
    return { ok: false, reason: 'information request count does not match the option length' };
  const infoRequests: number[] = [];
  for (let i = 0; i < count; i++) infoRequests.push(b.readUInt16BE(pos + i * 2));
  return { ok: true, value: { exportName: name.value.text, infoRequests } };
}

export function encodeGoPayload(exportName: string, infoRequests: readonly number[]): Buffer {
  const n = Buffer.from(exportName, 'utf8');
  const b = Buffer.alloc(4 + n.length + 2 + 2 * infoRequests.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  b.writeUInt16BE(infoRequests.length, 4 + n.length);
  infoRequests.forEach((t, i) => b.writeUInt16BE(t, 6 + n.length + 2 * i));
  return b;
}

export interface MetaContextRequest {
  exportName: string;
  queries: string[];
}

/** NBD_OPT_LIST/SET_META_CONTEXT payload: name (u32 len), u32 count, count x (u32 len, query). */
export function decodeMetaContextPayload(b: Buffer): Decoded<MetaContextRequest> {
  const name = readString(b, 0, 'export name');
  if (!name.ok) return name;
  let pos = name.value.next;
  if (pos + 4 > b.length) return { ok: false, reason: 'query count is missing' };
  const count = b.readUInt32BE(pos);
  pos += 4;
  if (count > NBD_MAX_META_QUERIES) return { ok: false, reason: `${count} queries, limit 16` };
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    const q = readString(b, pos, 'query');
    if (!q.ok) return q;
    queries.push(q.value.text);
    pos = q.value.next;
  }
  if (pos !== b.length) return { ok: false, reason: 'trailing bytes after the queries' };
  return { ok: true, value: { exportName: name.value.text, queries } };
}

export function encodeMetaContextPayload(exportName: string, queries: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  const n = Buffer.from(exportName, 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(n.length, 0);
  const count = Buffer.alloc(4);
  count.writeUInt32BE(queries.length, 0);
  parts.push(head, n, count);
  for (const q of queries) {
    const qb = Buffer.from(q, 'utf8');
    const ql = Buffer.alloc(4);
    ql.writeUInt32BE(qb.length, 0);
    parts.push(ql, qb);
  }
  return Buffer.concat(parts);
}

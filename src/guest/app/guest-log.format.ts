/**
 * The guest's on-disk record log: format and codecs (pure; node:buffer and node:crypto only).
 *
 * Layout of the guest's first disk:
 *
 *   [0, 512)            superblock: written once when the guest formats a blank disk, never rewritten
 *   [4096, ...)         slotCount slots of slotBytes each; slot i holds the record whose seq satisfies
 *                       (seq - 1) mod slotCount = i. The log is circular: when it reaches the last slot
 *                       it wraps to slot 0 and overwrites the oldest record; `lap` = floor((seq - 1) /
 *                       slotCount) counts the wraps. It never fills up and never stops.
 *
 * A record is one slot, written with one NBD WRITE (slotBytes is a multiple of 512, so a torn write
 * tears at sector boundaries and the checksum catches it):
 *
 *   0  magic u32 'SSGR'      4  version u16 (1)     6  headerBytes u16 (96)
 *   8  seq u64 (>= 1)        16 lap u32              20 incarnation u32 (boot number of the writer)
 *   24 timestampWallMs f64   32 payloadBytes u32     36 guestId length u8, 3 reserved
 *   40 guestId (40 bytes UTF-8, zero padded: a UUID fits)
 *   80 checksum: first 16 bytes of SHA-256 over the whole slot except these 16 bytes
 *   96 payload (payloadBytes, a PRNG stream seeded by seq), then zero padding to slotBytes
 *
 * An all-zero slot was never written. Anything else that fails to decode is a torn or corrupt slot.
 */
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { SecondsiteError } from '../../domain/errors.js';

export const SUPERBLOCK_MAGIC = 0x53534753; // 'SSGS'
export const RECORD_MAGIC = 0x53534752; // 'SSGR'
export const LOG_VERSION = 1;
export const SUPERBLOCK_BYTES = 512;
export const LOG_START_BYTES = 4096;
export const RECORD_HEADER_BYTES = 96;
export const SECTOR_BYTES = 512;
export const GUEST_ID_MAX_BYTES = 40;
/** A disk must hold at least this many slots. */
export const MIN_SLOT_COUNT = 4;

const CHECKSUM_AT = 80;
const CHECKSUM_BYTES = 16;
const SB_CHECKSUM_AT = SUPERBLOCK_BYTES - CHECKSUM_BYTES;

/** The log's geometry, fixed by the superblock when the disk is formatted. */
export interface GuestLogFormat {
  readonly slotBytes: number;
  readonly payloadBytes: number;
  readonly logStartBytes: number;
  readonly slotCount: number;
  readonly createdWallMs: number;
  /** The guest that formatted the disk. */
  readonly formattedBy: string;
}

export interface GuestRecord {
  readonly seq: number;
  readonly lap: number;
  readonly incarnation: number;
  readonly timestampWallMs: number;
  readonly guestId: string;
  readonly payloadBytes: number;
}

/** What a slot holds. */
export type SlotContent =
  | { readonly kind: 'zero' }
  | { readonly kind: 'record'; readonly record: GuestRecord }
  | { readonly kind: 'invalid'; readonly reason: string };

export function slotBytesFor(payloadBytes: number): number {
  return Math.ceil((RECORD_HEADER_BYTES + payloadBytes) / SECTOR_BYTES) * SECTOR_BYTES;
}

/** The geometry a blank disk of `diskBytes` gets for records of `payloadBytes`. */
export function planFormat(
  diskBytes: number,
  payloadBytes: number,
  formattedBy: string,
  createdWallMs: number,
): GuestLogFormat {
  const slotBytes = slotBytesFor(payloadBytes);
  const slotCount = Math.floor((diskBytes - LOG_START_BYTES) / slotBytes);
  if (slotCount < MIN_SLOT_COUNT)
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `a disk of ${diskBytes} bytes holds ${Math.max(slotCount, 0)} records of ${slotBytes} bytes; the guest log needs at least ${MIN_SLOT_COUNT}: use a larger disk or a smaller payload`,
      { diskBytes, slotBytes },
    );
  checkGuestId(formattedBy);
  return { slotBytes, payloadBytes, logStartBytes: LOG_START_BYTES, slotCount, createdWallMs, formattedBy };
}

export function checkGuestId(guestId: string): void {
  const n = Buffer.byteLength(guestId, 'utf8');
  if (n === 0 || n > GUEST_ID_MAX_BYTES)
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `a guest id is 1-${GUEST_ID_MAX_BYTES} bytes of UTF-8 (got ${n} bytes); choose a shorter id`,
      { guestId },
    );
}

function checksum(buf: Buffer, at: number): Buffer {
  const h = createHash('sha256');
  h.update(buf.subarray(0, at));
  h.update(buf.subarray(at + CHECKSUM_BYTES));
  return h.digest().subarray(0, CHECKSUM_BYTES);
}

function isZero(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i += 8) {
    if (i + 8 <= buf.length) {
      if (buf.readBigUInt64LE(i) !== 0n) return false;
    } else {
      for (let j = i; j < buf.length; j++) if (buf[j] !== 0) return false;
    }
  }
  return true;
}

export function isAllZero(buf: Buffer): boolean {
  return isZero(buf);
}

export function encodeSuperblock(f: GuestLogFormat): Buffer {
  const b = Buffer.alloc(SUPERBLOCK_BYTES);
  b.writeUInt32BE(SUPERBLOCK_MAGIC, 0);
  b.writeUInt16BE(LOG_VERSION, 4);
  b.writeUInt32BE(f.slotBytes, 8);
  b.writeUInt32BE(f.payloadBytes, 12);
  b.writeUInt32BE(f.logStartBytes, 16);
  b.writeUInt32BE(f.slotCount, 20);
  b.writeDoubleBE(f.createdWallMs, 24);
  const id = Buffer.from(f.formattedBy, 'utf8');
  b.writeUInt8(id.length, 32);
  id.copy(b, 33, 0, GUEST_ID_MAX_BYTES);
  checksum(b, SB_CHECKSUM_AT).copy(b, SB_CHECKSUM_AT);
  return b;
}

/** The superblock, 'blank' for an all-zero sector, or the reason it cannot be trusted. */
export function decodeSuperblock(
  b: Buffer,
): { kind: 'format'; format: GuestLogFormat } | { kind: 'blank' } | { kind: 'invalid'; reason: string } {
  if (b.length < SUPERBLOCK_BYTES) return { kind: 'invalid', reason: 'short read' };
  const sb = b.subarray(0, SUPERBLOCK_BYTES);
  if (isZero(sb)) return { kind: 'blank' };
  if (sb.readUInt32BE(0) !== SUPERBLOCK_MAGIC) return { kind: 'invalid', reason: 'bad magic' };
  if (sb.readUInt16BE(4) !== LOG_VERSION)
    return { kind: 'invalid', reason: `unknown version ${sb.readUInt16BE(4)}` };
  if (!checksum(sb, SB_CHECKSUM_AT).equals(sb.subarray(SB_CHECKSUM_AT)))
    return { kind: 'invalid', reason: 'bad checksum' };
  const idLen = sb.readUInt8(32);
  const format: GuestLogFormat = {
    slotBytes: sb.readUInt32BE(8),
    payloadBytes: sb.readUInt32BE(12),
    logStartBytes: sb.readUInt32BE(16),
    slotCount: sb.readUInt32BE(20),
    createdWallMs: sb.readDoubleBE(24),
    formattedBy: sb.toString('utf8', 33, 33 + Math.min(idLen, GUEST_ID_MAX_BYTES)),
  };
  if (
    format.slotBytes !== slotBytesFor(format.payloadBytes) ||
    format.logStartBytes < SUPERBLOCK_BYTES ||
    format.slotCount < MIN_SLOT_COUNT
  )
    return { kind: 'invalid', reason: 'inconsistent geometry' };
  return { kind: 'format', format };
}

/** Byte offset of the slot that holds `seq`. */
export function slotOffsetBytes(f: GuestLogFormat, slot: number): number {
  return f.logStartBytes + slot * f.slotBytes;
}

export function slotOfSeq(f: GuestLogFormat, seq: number): number {
  return (seq - 1) % f.slotCount;
}

export function lapOfSeq(f: GuestLogFormat, seq: number): number {
  return Math.floor((seq - 1) / f.slotCount);
}

/** Deterministic payload bytes for a record (xorshift32 seeded by seq): incompressible, reproducible. */
export function fillPayload(out: Buffer, seq: number): void {
  let x = (seq * 0x9e3779b1) >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= out.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  for (; i < out.length; i++) out[i] = i & 0xff;
}

/** One slot holding `record` (its payload is generated from its seq). */
export function encodeRecord(f: GuestLogFormat, r: Omit<GuestRecord, 'lap' | 'payloadBytes'>): Buffer {
  const b = Buffer.alloc(f.slotBytes);
  b.writeUInt32BE(RECORD_MAGIC, 0);
  b.writeUInt16BE(LOG_VERSION, 4);
  b.writeUInt16BE(RECORD_HEADER_BYTES, 6);
  b.writeBigUInt64BE(BigInt(r.seq), 8);
  b.writeUInt32BE(lapOfSeq(f, r.seq), 16);
  b.writeUInt32BE(r.incarnation, 20);
  b.writeDoubleBE(r.timestampWallMs, 24);
  b.writeUInt32BE(f.payloadBytes, 32);
  const id = Buffer.from(r.guestId, 'utf8');
  b.writeUInt8(id.length, 36);
  id.copy(b, 40, 0, GUEST_ID_MAX_BYTES);
  fillPayload(b.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + f.payloadBytes), r.seq);
  checksum(b, CHECKSUM_AT).copy(b, CHECKSUM_AT);
  return b;
}

/** Decodes the slot at index `slot`; a record is valid only if it belongs in that slot. */
export function decodeSlot(f: GuestLogFormat, slot: number, b: Buffer): SlotContent {
  if (isZero(b)) return { kind: 'zero' };
  if (b.readUInt32BE(0) !== RECORD_MAGIC) return { kind: 'invalid', reason: 'bad magic' };
  if (!checksum(b, CHECKSUM_AT).equals(b.subarray(CHECKSUM_AT, CHECKSUM_AT + CHECKSUM_BYTES)))
    return { kind: 'invalid', reason: 'bad checksum' };
  if (b.readUInt16BE(4) !== LOG_VERSION || b.readUInt16BE(6) !== RECORD_HEADER_BYTES)
    return { kind: 'invalid', reason: 'unknown record version' };
  const seqBig = b.readBigUInt64BE(8);
  if (seqBig < 1n || seqBig > BigInt(Number.MAX_SAFE_INTEGER))
    return { kind: 'invalid', reason: 'sequence number out of range' };
  const seq = Number(seqBig);
  const lap = b.readUInt32BE(16);
  if (slotOfSeq(f, seq) !== slot || lapOfSeq(f, seq) !== lap)
    return { kind: 'invalid', reason: `record seq ${seq} does not belong in slot ${slot}` };
  const payloadBytes = b.readUInt32BE(32);
  if (payloadBytes !== f.payloadBytes)
    return { kind: 'invalid', reason: 'payload size differs from the format' };
  const idLen = Math.min(b.readUInt8(36), GUEST_ID_MAX_BYTES);
  return {
    kind: 'record',
    record: {
      seq,
      lap,
      incarnation: b.readUInt32BE(20),
      timestampWallMs: b.readDoubleBE(24),
      guestId: b.toString('utf8', 40, 40 + idLen),
      payloadBytes,
    },
  };
}

/**
 * The change-tracking state file (`<diskId>.ctrack`), written only by atomic replace
 * (temp + datasync + rename + syncDir), so it is always the old or the new version, whole. Layout
 * (little-endian):
 *
 *   0  magic "SSCTRK01"      8 bytes
 *   8  format version (1)    u32
 *  12  flags                 u32  bit 0 OPEN: written when tracking starts; a file still OPEN at the next
 *                                 start means the previous run did not stop cleanly.
 *                                 bit 1 RESYNC_PENDING: the next cycle must be a checksum-compared resync.
 *  16  generation            u64  +1 on every write (diagnostics, and ordering if ever double-buffered)
 *  24  sizeBytes             u64  disk size the bitmaps describe
 *  32  trackingBlockBytes    u32
 *  36  bitmapBytes           u32  length of each bitmap
 *  40  crc32                 u32  zlib crc32 over bytes [0, 40) and [44, end)
 *  44  reserved (0)          u32
 *  48  shipping bitmap, then active bitmap
 *
 * Anything that does not verify decodes to an error string, never to a trusted state.
 */
import { crc32 } from 'node:zlib';
import { DirtyBitmap } from './dirty-bitmap.js';

const MAGIC = Buffer.from('SSCTRK01', 'latin1');
const VERSION = 1;
const HEADER_BYTES = 48;
const FLAG_OPEN = 1;
const FLAG_RESYNC_PENDING = 2;

export interface TrackingState {
  /** True while a tracker has the disk open: found at start, it means an unclean stop. */
  readonly open: boolean;
  readonly resyncPending: boolean;
  readonly generation: number;
  readonly sizeBytes: number;
  readonly trackingBlockBytes: number;
  readonly shipping: DirtyBitmap;
  readonly active: DirtyBitmap;
}

export function blockCountFor(sizeBytes: number, trackingBlockBytes: number): number {
  return Math.ceil(sizeBytes / trackingBlockBytes);
}

export function encodeTrackingState(s: TrackingState): Buffer {
  const n = s.shipping.bytes.length;
  const buf = Buffer.alloc(HEADER_BYTES + 2 * n);
  MAGIC.copy(buf, 0);
  buf.writeUInt32LE(VERSION, 8);
  buf.writeUInt32LE((s.open ? FLAG_OPEN : 0) | (s.resyncPending ? FLAG_RESYNC_PENDING : 0), 12);
  buf.writeBigUInt64LE(BigInt(s.generation), 16);
  buf.writeBigUInt64LE(BigInt(s.sizeBytes), 24);
  buf.writeUInt32LE(s.trackingBlockBytes, 32);
  buf.writeUInt32LE(n, 36);
  buf.set(s.shipping.bytes, HEADER_BYTES);
  buf.set(s.active.bytes, HEADER_BYTES + n);
  buf.writeUInt32LE(checksum(buf), 40);
  return buf;
}

export function decodeTrackingState(buf: Buffer): TrackingState | string {
  if (buf.length < HEADER_BYTES) return `too short (${buf.length} bytes)`;
  if (!buf.subarray(0, 8).equals(MAGIC)) return 'bad magic';
  const version = buf.readUInt32LE(8);
  if (version !== VERSION) return `unknown version ${version}`;
  const n = buf.readUInt32LE(36);
  if (buf.length !== HEADER_BYTES + 2 * n) return `length ${buf.length} does not match bitmaps of ${n} bytes`;
  if (buf.readUInt32LE(40) !== checksum(buf)) return 'checksum mismatch';
  const flags = buf.readUInt32LE(12);
  const sizeBytes = Number(buf.readBigUInt64LE(24));
  const trackingBlockBytes = buf.readUInt32LE(32);
  if (trackingBlockBytes === 0) return 'tracking block size 0';
  const blocks = blockCountFor(sizeBytes, trackingBlockBytes);
  if (Math.ceil(blocks / 8) !== n) return `bitmap length ${n} does not match ${blocks} blocks`;
  return {
    open: (flags & FLAG_OPEN) !== 0,
    resyncPending: (flags & FLAG_RESYNC_PENDING) !== 0,
    generation: Number(buf.readBigUInt64LE(16)),
    sizeBytes,
    trackingBlockBytes,
    shipping: new DirtyBitmap(blocks, buf.subarray(HEADER_BYTES, HEADER_BYTES + n).slice()),
    active: new DirtyBitmap(blocks, buf.subarray(HEADER_BYTES + n).slice()),
  };
}

function checksum(buf: Buffer): number {
  return crc32(buf.subarray(44), crc32(buf.subarray(0, 40)));
}

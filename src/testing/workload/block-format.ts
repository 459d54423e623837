/**
 * Self-describing 4 KiB blocks (data-safety.md 2.5 step 1): every block the workload generator writes
 * says which write put it there, so a checker can tell, block by block, whether an image is a state the
 * disk could legally be in.
 *
 * Layout (little-endian u32 words; a block is 1024 words, 8 sectors of 128 words):
 *
 *   header, sector 0 words 0..15 (64 bytes)
 *     0 magic 'SBLK'   1 diskId        2 lba lo     3 lba hi
 *     4 writeId lo     5 writeId hi    6 epoch      7 runTag (the workload seed)
 *     8 payloadCrc     9 format (1)    10..14 zero  15 headerCrc = crc32c(bytes 0..59)
 *   sector stamp, sectors 1..7, first 4 words of the sector (16 bytes)
 *     0 STAMP_MAGIC + sectorIdx   1 writeId lo   2 writeId hi   3 lba lo
 *   payload: every other word = PRNG(seed, writeId, lba) (xorshift32 from a hash of the three);
 *     payloadCrc is the crc32c of the payload bytes (seedless integrity check).
 *
 * A torn block (sectors from different writes, or some zero) is visible because each sector carries
 * its owner. A misdirected block is visible because lba and diskId are in the header. A block from
 * another run has a different runTag. The checker regenerates the payload, which is stronger than the
 * digest, and fast: `BlockReader.observe` classifies a 4 KiB block in a few microseconds.
 *
 * writeId 0 is reserved for the optional initial pattern (`encodeInitialBlock`, epoch 0); real writes
 * start at 1. Offsets inside a disk are in blocks (`lba`), always `BLOCK_SIZE_BYTES` units.
 */
import { crc32c } from './crc32c.js';

export const BLOCK_SIZE_BYTES = 4096;
export const SECTOR_SIZE_BYTES = 512;
export const SECTORS_PER_BLOCK = 8;
export const HEADER_SIZE_BYTES = 64;
/** writeId of the initial pattern; the workload's own writes are numbered from 1. */
export const INITIAL_WRITE_ID = 0;

const WORDS = BLOCK_SIZE_BYTES / 4;
const SECTOR_WORDS = SECTOR_SIZE_BYTES / 4;
const HEADER_WORDS = HEADER_SIZE_BYTES / 4;
const STAMP_WORDS = 4;
const MAGIC = 0x4b4c4253; // 'SBLK'
const STAMP_MAGIC = 0x53544d00; // 'STM' + sector index in the low byte
const FORMAT = 1;
const TWO32 = 4294967296;

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error('block-format assumes a little-endian machine');
}

/** What a block claims about itself. */
export interface BlockStamp {
  diskId: number;
  /** Block address on the disk (byte offset / BLOCK_SIZE_BYTES). */
  lba: number;
  /** Global write number, unique within a run, assigned at submit. */
  writeId: number;
  /** VM-global epoch of the write. */
  epoch: number;
}

/** Who owns one 512-byte sector of an observed block. */
export type SectorOwner =
  { kind: 'zero' } | { kind: 'write'; writeId: number } | { kind: 'invalid'; reason: string };

/** What a 4 KiB block of an image turned out to be. */
export type BlockObservation =
  /** all zeros (never written, zeroed or trimmed) */
  | { kind: 'zero' }
  /** one intact write, all sectors and the payload valid; `lba`/`diskId` may differ from the position */
  | ({ kind: 'block' } & BlockStamp)
  /** every sector valid but not all from the same write (or some zero): a torn write */
  | { kind: 'torn'; sectors: SectorOwner[]; header: BlockStamp | null }
  /** a block stamped by a different run (runTag differs) */
  | ({ kind: 'foreign'; runTag: number } & BlockStamp)
  /** anything else: bad magic, bad checksum, payload not what the PRNG says */
  | { kind: 'corrupt'; reason: string };

function hash32(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ b;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

function payloadState(seed: number, writeId: number, lba: number): number {
  let h = hash32(seed >>> 0, writeId >>> 0);
  h = hash32(h, Math.floor(writeId / TWO32));
  h = hash32(h, lba >>> 0);
  h = hash32(h, Math.floor(lba / TWO32));
  return h === 0 ? 0x1234567 : h;
}

/** Fills `words[0..1024)` with the PRNG payload of (seed, writeId, lba); header/stamp words included. */
function fillPayload(words: Uint32Array, seed: number, writeId: number, lba: number): void {
  let x = payloadState(seed, writeId, lba);
  for (let i = 0; i < WORDS; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
}

function isPayloadWord(i: number): boolean {
  const inSector = i % SECTOR_WORDS;
  return i < SECTOR_WORDS ? i >= HEADER_WORDS : inSector >= STAMP_WORDS;
}

function payloadCrc(bytes: Uint8Array, base: number): number {
  let crc = crc32c(bytes, base + HEADER_SIZE_BYTES, base + SECTOR_SIZE_BYTES, 0);
  for (let s = 1; s < SECTORS_PER_BLOCK; s++) {
    const start = base + s * SECTOR_SIZE_BYTES;
    crc = crc32c(bytes, start + STAMP_WORDS * 4, start + SECTOR_SIZE_BYTES, crc);
  }
  return crc;
}

function wordsOf(buf: Buffer, offset: number): Uint32Array | null {
  const byteOffset = buf.byteOffset + offset;
  return byteOffset % 4 === 0 ? new Uint32Array(buf.buffer, byteOffset, WORDS) : null;
}

/**
 * Writes the block for `stamp` into `out[outOffset, outOffset+4096)` (allocates when `out` is absent)
 * and returns the buffer.
 */
export function encodeBlock(seed: number, stamp: BlockStamp, out?: Buffer, outOffset = 0): Buffer {
  const target = out ?? Buffer.allocUnsafe(BLOCK_SIZE_BYTES);
  const aligned = wordsOf(target, outOffset);
  const words = aligned ?? new Uint32Array(WORDS);
  fillPayload(words, seed, stamp.writeId, stamp.lba);
  const writeLo = stamp.writeId >>> 0;
  const writeHi = Math.floor(stamp.writeId / TWO32) >>> 0;
  const lbaLo = stamp.lba >>> 0;
  for (let s = 1; s < SECTORS_PER_BLOCK; s++) {
    const w = s * SECTOR_WORDS;
    words[w] = (STAMP_MAGIC | s) >>> 0;
    words[w + 1] = writeLo;
    words[w + 2] = writeHi;
    words[w + 3] = lbaLo;
  }
  words[0] = MAGIC;
  words[1] = stamp.diskId >>> 0;
  words[2] = lbaLo;
  words[3] = Math.floor(stamp.lba / TWO32) >>> 0;
  words[4] = writeLo;
  words[5] = writeHi;
  words[6] = stamp.epoch >>> 0;
  words[7] = seed >>> 0;
  words[9] = FORMAT;
  for (let i = 10; i < HEADER_WORDS; i++) words[i] = 0;
  const bytes = new Uint8Array(words.buffer, words.byteOffset, BLOCK_SIZE_BYTES);
  words[8] = payloadCrc(bytes, 0);
  words[15] = crc32c(bytes, 0, HEADER_SIZE_BYTES - 4);
  if (!aligned) target.set(bytes, outOffset);
  return target;
}

/** Encodes `blocks` consecutive blocks of one write starting at `lba` into one buffer. */
export function encodeWrite(
  seed: number,
  write: { diskId: number; lba: number; blocks: number; writeId: number; epoch: number },
): Buffer {
  const out = Buffer.allocUnsafe(write.blocks * BLOCK_SIZE_BYTES);
  for (let i = 0; i < write.blocks; i++) {
    encodeBlock(
      seed,
      { diskId: write.diskId, lba: write.lba + i, writeId: write.writeId, epoch: write.epoch },
      out,
      i * BLOCK_SIZE_BYTES,
    );
  }
  return out;
}

/** The initial pattern of a block (writeId 0, epoch 0), for images that are pre-filled instead of zero. */
export function encodeInitialBlock(
  seed: number,
  diskId: number,
  lba: number,
  out?: Buffer,
  outOffset = 0,
): Buffer {
  return encodeBlock(seed, { diskId, lba, writeId: INITIAL_WRITE_ID, epoch: 0 }, out, outOffset);
}

/**
 * Classifies blocks of an image for one run (`seed`). Reuses scratch buffers, so one reader per
 * checker; not re-entrant across awaits (it has none).
 */
export class BlockReader {
  private readonly expected = new Uint32Array(WORDS);
  private readonly scratch = new Uint32Array(WORDS);
  private readonly scratchBytes = new Uint8Array(this.scratch.buffer);

  constructor(readonly seed: number) {}

  /**
   * Classifies the block at `buf[offset, offset+4096)` found at address `lba`. Never throws on bad
   * data. `lba` is only used to verify sectors of a torn block (whose stamps carry 32 bits of lba).
   */
  observe(buf: Buffer, offset: number, lba: number): BlockObservation {
    let words = wordsOf(buf, offset);
    if (!words) {
      this.scratchBytes.set(buf.subarray(offset, offset + BLOCK_SIZE_BYTES));
      words = this.scratch;
    }
    let any = 0;
    for (let i = 0; i < WORDS; i++) any |= words[i] as number;
    if (any === 0) return { kind: 'zero' };

    const bytes = new Uint8Array(words.buffer, words.byteOffset, BLOCK_SIZE_BYTES);
    const header = this.header(words, bytes);
    if (header && header.runTag !== this.seed >>> 0) {
      return { kind: 'foreign', runTag: header.runTag, ...header.stamp };
    }
    if (header && this.intact(words, header.stamp)) return { kind: 'block', ...header.stamp };
    return this.sectorwise(words, lba, header?.stamp ?? null);
  }

  private header(
    words: Uint32Array,
    bytes: Uint8Array,
  ): { stamp: BlockStamp; runTag: number; payloadCrc: number } | null {
    if (words[0] !== MAGIC || words[9] !== FORMAT) return null;
    if (crc32c(bytes, 0, HEADER_SIZE_BYTES - 4) !== words[15]) return null;
    return {
      stamp: {
        diskId: words[1] as number,
        lba: (words[2] as number) + (words[3] as number) * TWO32,
        writeId: (words[4] as number) + (words[5] as number) * TWO32,
        epoch: words[6] as number,
      },
      runTag: words[7] as number,
      payloadCrc: words[8] as number,
    };
  }

  /** True when every stamp and every payload word is exactly what `stamp` would have written. */
  private intact(words: Uint32Array, stamp: BlockStamp): boolean {
    const exp = this.expected;
    fillPayload(exp, this.seed, stamp.writeId, stamp.lba);
    const writeLo = stamp.writeId >>> 0;
    const writeHi = Math.floor(stamp.writeId / TWO32) >>> 0;
    const lbaLo = stamp.lba >>> 0;
    for (let s = 0; s < SECTORS_PER_BLOCK; s++) {
      const w = s * SECTOR_WORDS;
      if (s > 0) {
        if (words[w] !== (STAMP_MAGIC | s) >>> 0) return false;
        if (words[w + 1] !== writeLo || words[w + 2] !== writeHi || words[w + 3] !== lbaLo) return false;
      }
      const from = s === 0 ? HEADER_WORDS : w + STAMP_WORDS;
      for (let i = from; i < w + SECTOR_WORDS; i++) if (words[i] !== exp[i]) return false;
    }
    return true;
  }

  /** Slow path: who owns each sector. */
  private sectorwise(words: Uint32Array, lba: number, header: BlockStamp | null): BlockObservation {
    const sectors: SectorOwner[] = [];
    let lastExpectedFor = -1;
    for (let s = 0; s < SECTORS_PER_BLOCK; s++) {
      const w = s * SECTOR_WORDS;
      let zero = 0;
      for (let i = w; i < w + SECTOR_WORDS; i++) zero |= words[i] as number;
      if (zero === 0) {
        sectors.push({ kind: 'zero' });
        continue;
      }
      let writeId: number;
      let from: number;
      if (s === 0) {
        if (!header) {
          sectors.push({ kind: 'invalid', reason: 'sector 0 has no valid header (magic or header crc)' });
          continue;
        }
        if (header.lba !== lba) {
          return {
            kind: 'corrupt',
            reason: `header says lba ${header.lba} but the payload does not match it`,
          };
        }
        writeId = header.writeId;
        from = HEADER_WORDS;
      } else {
        if (words[w] !== (STAMP_MAGIC | s) >>> 0 || words[w + 3] !== lba >>> 0) {
          sectors.push({ kind: 'invalid', reason: `sector ${s} stamp is not a stamp for this lba` });
          continue;
        }
        writeId = (words[w + 1] as number) + (words[w + 2] as number) * TWO32;
        from = w + STAMP_WORDS;
      }
      if (lastExpectedFor !== writeId) {
        fillPayload(this.expected, this.seed, writeId, lba);
        lastExpectedFor = writeId;
      }
      let ok = true;
      for (let i = from; i < w + SECTOR_WORDS; i++) {
        if (words[i] !== this.expected[i]) {
          ok = false;
          break;
        }
      }
      sectors.push(
        ok
          ? { kind: 'write', writeId }
          : { kind: 'invalid', reason: `sector ${s} payload does not match write ${writeId}` },
      );
    }
    const invalid = sectors.find((x) => x.kind === 'invalid');
    if (invalid && invalid.kind === 'invalid') return { kind: 'corrupt', reason: invalid.reason };
    return { kind: 'torn', sectors, header };
  }
}

/** Verifies a single block's own checksums without knowing the seed (header crc + payload digest). */
export function checksumsValid(buf: Buffer, offset = 0): boolean {
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset + offset, BLOCK_SIZE_BYTES);
  const view = new DataView(bytes.buffer, bytes.byteOffset, BLOCK_SIZE_BYTES);
  if (view.getUint32(0, true) !== MAGIC) return false;
  if (crc32c(bytes, 0, HEADER_SIZE_BYTES - 4) !== view.getUint32(60, true)) return false;
  return payloadCrc(bytes, 0) === view.getUint32(32, true);
}

/** Whether word index `i` of a block carries payload (not header or stamp); for tests that flip bytes. */
export function isPayloadByte(byteIndexInBlock: number): boolean {
  return isPayloadWord(Math.floor(byteIndexInBlock / 4));
}

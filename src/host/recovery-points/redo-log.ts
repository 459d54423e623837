/**
 * The staging redo log of one cycle: an append-only file of self-checksummed records
 * `magic u32 | metaLen u32 | payloadLen u32 | sha256(meta ‖ sha256(payload)) | meta JSON | payload`
 * (magic "SSR2"; the payload's own SHA-256 inside lets a writer that already holds the chunk's digest,
 * the receiver after its end-to-end check, skip hashing the payload again). Records of the first
 * format, "SSR1" with `sha256(meta ‖ payload)`, are still read.
 * The first record is the header (cycleId, epoch); then `data` and `zero` records. A later header
 * re-heads the log to another cycle that adopted the records before it (recovery-points.md section 4).
 * An in-place log (first header with `place: 'base'`, a store's first cycle, section 4.1) holds `base`
 * records instead of `data`: metadata only, the bytes are already (durably) in the base.
 * A reader trusts the longest prefix of valid records, so unsynced or torn tails after a power cut are
 * cut off, never used.
 */
import { createHash } from 'node:crypto';
import { SecondsiteError } from '../../domain/errors.js';
import { coalesce, covers, type ByteRange } from '../../domain/replication/extent-set.js';
import type { StorageFile } from '../storage/storage.js';
import { ExtentMap, sliceRedoSource, type RedoSource } from './extent-map.js';

const MAGIC_V1 = 0x53535231; // "SSR1": sha256(meta ‖ payload)
const MAGIC = 0x53535232; // "SSR2": sha256(meta ‖ sha256(payload))
const HEADER_BYTES = 44;
const MAX_META_BYTES = 64 * 1024;
const MAX_PAYLOAD_BYTES = 1024 * 1024 * 1024;
const HASH_CHUNK_BYTES = 1024 * 1024;

export type RedoMeta =
  | { readonly k: 'head'; readonly cycleId: string; readonly epoch: number; readonly place?: 'base' }
  | { readonly k: 'data'; readonly d: string; readonly o: number }
  | { readonly k: 'base'; readonly d: string; readonly o: number; readonly l: number }
  | { readonly k: 'zero'; readonly d: string; readonly o: number; readonly l: number };

/** A staged range as found in the log: its bytes are in the log (`data`), zero, or in the base. */
export interface RedoEntry {
  readonly diskId: string;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  readonly source: RedoSource;
}

/** Encodes one record; `payload` only for `data`. */
export function encodeRedoRecord(meta: RedoMeta, payload?: Buffer): Buffer {
  const { head, payload: body } = encodeRedoRecordParts(meta, payload);
  return Buffer.concat([head, body]);
}

/**
 * The same record as two pieces to write back to back: header + meta, then the payload as given (not
 * copied: a 1 MiB chunk is not concatenated into a new buffer). `payloadSha256`, when given, must be
 * SHA-256(payload) (a wrong one makes the record, and everything after it, invalid at the next scan).
 */
export function encodeRedoRecordParts(
  meta: RedoMeta,
  payload?: Buffer,
  payloadSha256?: Buffer,
): { head: Buffer; payload: Buffer } {
  const metaBytes = Buffer.from(JSON.stringify(meta), 'utf8');
  const body = payload ?? Buffer.alloc(0);
  const head = Buffer.alloc(HEADER_BYTES + metaBytes.length);
  head.writeUInt32LE(MAGIC, 0);
  head.writeUInt32LE(metaBytes.length, 4);
  head.writeUInt32LE(body.length, 8);
  const bodyDigest = payloadSha256 ?? createHash('sha256').update(body).digest();
  createHash('sha256').update(metaBytes).update(bodyDigest).digest().copy(head, 12);
  metaBytes.copy(head, HEADER_BYTES);
  return { head, payload: body };
}

/** Position of a record's payload relative to the record's start. */
export function payloadOffsetInRecord(record: Buffer): number {
  return HEADER_BYTES + record.readUInt32LE(4);
}

export interface RedoScan {
  /** The last header: the cycle being staged. */
  readonly head: { cycleId: string; epoch: number } | null;
  /** The log stages in place (its first header says so): its bytes are in the bases. */
  readonly inPlace: boolean;
  readonly entries: RedoEntry[];
  /** How many of `entries` come before the last header (staged by earlier cycles, adopted). */
  readonly adoptedEntries: number;
  /** Records accepted, the header included. */
  readonly records: number;
  /** Bytes of the valid prefix. */
  readonly validBytes: number;
}

/** Reads the valid prefix of a redo log, up to `limitBytes` (default: the whole file). */
export async function scanRedoLog(file: StorageFile, limitBytes?: number): Promise<RedoScan> {
  const fileBytes = Math.min(await file.sizeBytes(), limitBytes ?? Number.MAX_SAFE_INTEGER);
  const entries: RedoEntry[] = [];
  let head: RedoScan['head'] = null;
  let adoptedEntries = 0;
  let inPlace = false;
  let pos = 0;
  let records = 0;
  const header = Buffer.alloc(HEADER_BYTES);
  while (pos + HEADER_BYTES <= fileBytes) {
    if ((await file.read(header, 0, HEADER_BYTES, pos)) !== HEADER_BYTES) break;
    const magic = header.readUInt32LE(0);
    if (magic !== MAGIC && magic !== MAGIC_V1) break;
    const metaLen = header.readUInt32LE(4);
    const payloadLen = header.readUInt32LE(8);
    if (metaLen > MAX_META_BYTES || payloadLen > MAX_PAYLOAD_BYTES) break;
    const end = pos + HEADER_BYTES + metaLen + payloadLen;
    if (end > fileBytes) break;
    const metaBytes = Buffer.alloc(metaLen);
    if ((await file.read(metaBytes, 0, metaLen, pos + HEADER_BYTES)) !== metaLen) break;
    const hash = createHash('sha256').update(metaBytes);
    const payloadHash = magic === MAGIC ? createHash('sha256') : hash;
    const chunk = Buffer.alloc(Math.min(HASH_CHUNK_BYTES, payloadLen));
    let done = 0;
    let short = false;
    while (done < payloadLen) {
      const n = Math.min(chunk.length, payloadLen - done);
      if ((await file.read(chunk, 0, n, pos + HEADER_BYTES + metaLen + done)) !== n) {
        short = true;
        break;
      }
      payloadHash.update(chunk.subarray(0, n));
      done += n;
    }
    if (magic === MAGIC && !short) hash.update(payloadHash.digest());
    if (short || !hash.digest().equals(header.subarray(12, 44))) break;
    let meta: RedoMeta;
    try {
      meta = JSON.parse(metaBytes.toString('utf8')) as RedoMeta;
    } catch {
      break;
    }
    if (records === 0) {
      if (meta.k !== 'head') break;
      head = { cycleId: meta.cycleId, epoch: meta.epoch };
      inPlace = meta.place === 'base';
    } else if (meta.k === 'head') {
      head = { cycleId: meta.cycleId, epoch: meta.epoch };
      adoptedEntries = entries.length;
    } else if (meta.k === 'data' && !inPlace) {
      entries.push({
        diskId: meta.d,
        offsetBytes: meta.o,
        lengthBytes: payloadLen,
        source: { kind: 'data', posBytes: pos + HEADER_BYTES + metaLen },
      });
    } else if (meta.k === 'zero') {
      entries.push({ diskId: meta.d, offsetBytes: meta.o, lengthBytes: meta.l, source: { kind: 'zero' } });
    } else if (meta.k === 'base' && inPlace && payloadLen === 0) {
      entries.push({ diskId: meta.d, offsetBytes: meta.o, lengthBytes: meta.l, source: { kind: 'base' } });
    } else {
      break;
    }
    records++;
    pos = end;
  }
  return { head, inPlace, entries, adoptedEntries, records, validBytes: pos };
}

/**
 * True when an earlier cycle's staged records may be adopted by a new cycle: there are some, and every
 * one lies inside `within` (per disk id, the new cycle's plan). Data from outside the plan must never
 * reach a point, so anything else is discarded.
 */
export function adoptable(
  entries: readonly RedoEntry[],
  within: Readonly<Record<string, ReadonlyArray<ByteRange>>> | undefined,
): boolean {
  if (within === undefined || entries.length === 0) return false;
  const plan = new Map(Object.entries(within).map(([diskId, ranges]) => [diskId, coalesce(ranges)]));
  return entries.every((e) => covers(plan.get(e.diskId) ?? [], e.offsetBytes, e.lengthBytes));
}

/** Per disk, the final content map of a cycle: later records win where they overlap. */
export function buildRedoMap(entries: readonly RedoEntry[]): Map<string, ExtentMap<RedoSource>> {
  const maps = new Map<string, ExtentMap<RedoSource>>();
  for (const e of entries) {
    let m = maps.get(e.diskId);
    if (m === undefined) {
      m = new ExtentMap<RedoSource>(sliceRedoSource);
      maps.set(e.diskId, m);
    }
    m.set(e.offsetBytes, e.lengthBytes, e.source);
  }
  return maps;
}

export function redoCorrupt(message: string, details: Record<string, unknown>): SecondsiteError {
  return new SecondsiteError('SECONDSITE_ERR_METADATA_CORRUPT', message, details);
}

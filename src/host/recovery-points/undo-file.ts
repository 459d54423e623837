/**
 * Undo files: for one point, the bytes that later cycles overwrote, as they were at that point.
 * Written once, sequentially: raw data, then a checksummed index (metadata-file encoding), then a
 * 16-byte trailer `indexPos u64 | indexLen u32 | magic u32`. Opening reads only trailer and index.
 * Writers datasync the file (and the caller syncs its directory) before anything refers to it.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Storage, StorageFile } from '../storage/storage.js';
import { ExtentMap, sliceSourceRef, type SourceRef } from './extent-map.js';
import { decodeMetadata, encodeMetadata } from './metadata-file.js';

const MAGIC = 0x53535531; // "SSU1"
const TRAILER_BYTES = 16;
const COPY_CHUNK_BYTES = 1024 * 1024;

/** An open undo file and its per-disk index. */
export interface LoadedUndo {
  readonly fileName: string;
  readonly file: StorageFile;
  readonly disks: ReadonlyMap<string, ExtentMap<SourceRef>>;
}

type IndexBody = { format: 'secondsite-undo-1'; disks: Record<string, Array<[number, number, number]>> };

/** Reads the pieces `plan` describes (from anywhere) and writes them as one undo file. */
export class UndoWriter {
  private posBytes = 0;
  private readonly index = new Map<string, Array<[number, number, number]>>();

  private constructor(private readonly file: StorageFile) {}

  static async create(storage: Storage, path: string): Promise<UndoWriter> {
    const file = await storage.open(path, 'create');
    await file.truncate(0);
    return new UndoWriter(file);
  }

  /**
   * Appends `data` as the old content of [offsetBytes, +length) of a disk; all-zero data is stored as
   * zero. The place in the file is taken at the call, so several appends may run at once; the file is
   * valid only once `seal()` ran after every append resolved (a failed append fails the capture).
   */
  addData(diskId: string, offsetBytes: number, data: Buffer): Promise<void> {
    if (isAllZero(data)) {
      this.addZero(diskId, offsetBytes, data.length);
      return Promise.resolve();
    }
    const pos = this.posBytes;
    this.posBytes += data.length;
    this.entries(diskId).push([offsetBytes, data.length, pos]);
    return this.file.write(data, 0, data.length, pos);
  }

  addZero(diskId: string, offsetBytes: number, lengthBytes: number): void {
    if (lengthBytes > 0) this.entries(diskId).push([offsetBytes, lengthBytes, -1]);
  }

  private entries(diskId: string): Array<[number, number, number]> {
    let list = this.index.get(diskId);
    if (list === undefined) {
      list = [];
      this.index.set(diskId, list);
    }
    return list;
  }

  /** Writes index and trailer, datasyncs and closes. The caller syncs the directory. */
  async seal(): Promise<void> {
    const body: IndexBody = { format: 'secondsite-undo-1', disks: {} };
    for (const [diskId, list] of this.index) body.disks[diskId] = [...list].sort((a, b) => a[0] - b[0]);
    const indexBytes = encodeMetadata(body);
    const trailer = Buffer.alloc(TRAILER_BYTES);
    trailer.writeBigUInt64LE(BigInt(this.posBytes), 0);
    trailer.writeUInt32LE(indexBytes.length, 8);
    trailer.writeUInt32LE(MAGIC, 12);
    const tail = Buffer.concat([indexBytes, trailer]);
    await this.file.write(tail, 0, tail.length, this.posBytes);
    await this.file.datasync();
    await this.file.close();
  }

  async abort(): Promise<void> {
    await this.file.close();
  }
}

/** Opens an undo file read-only and verifies its index; METADATA_CORRUPT when it does not verify. */
export async function loadUndo(storage: Storage, path: string, fileName: string): Promise<LoadedUndo> {
  const file = await storage.open(path, 'read');
  try {
    const size = await file.sizeBytes();
    const trailer = Buffer.alloc(TRAILER_BYTES);
    if (
      size < TRAILER_BYTES ||
      (await file.read(trailer, 0, TRAILER_BYTES, size - TRAILER_BYTES)) !== TRAILER_BYTES
    ) {
      throw corrupt(path, 'too short');
    }
    if (trailer.readUInt32LE(12) !== MAGIC) throw corrupt(path, 'no trailer');
    const indexPos = Number(trailer.readBigUInt64LE(0));
    const indexLen = trailer.readUInt32LE(8);
    if (indexPos + indexLen + TRAILER_BYTES !== size) throw corrupt(path, 'trailer does not match the size');
    const indexBytes = Buffer.alloc(indexLen);
    if ((await file.read(indexBytes, 0, indexLen, indexPos)) !== indexLen) throw corrupt(path, 'short index');
    const body = decodeMetadata(indexBytes, path) as IndexBody;
    if (body.format !== 'secondsite-undo-1') throw corrupt(path, 'unknown format');
    const disks = new Map<string, ExtentMap<SourceRef>>();
    for (const [diskId, list] of Object.entries(body.disks)) {
      const map = new ExtentMap<SourceRef>(sliceSourceRef);
      for (const [o, l, p] of list) {
        if (p >= 0 && p + l > indexPos) throw corrupt(path, 'extent beyond the data');
        map.set(o, l, p < 0 ? { kind: 'zero' } : { kind: 'data', posBytes: p });
      }
      disks.set(diskId, map);
    }
    return { fileName, file, disks };
  } catch (e) {
    await file.close();
    throw e;
  }
}

/** Reads exactly `lengthBytes` at `positionBytes` into `buf[bufOffset..]`, zero-filling past EOF. */
export async function readFully(
  file: StorageFile,
  buf: Buffer,
  bufOffset: number,
  lengthBytes: number,
  positionBytes: number,
): Promise<void> {
  let done = 0;
  while (done < lengthBytes) {
    const n = await file.read(buf, bufOffset + done, lengthBytes - done, positionBytes + done);
    if (n === 0) break;
    done += n;
  }
  if (done < lengthBytes) buf.fill(0, bufOffset + done, bufOffset + lengthBytes);
}

export const COPY_CHUNK = COPY_CHUNK_BYTES;

export function isAllZero(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

function corrupt(path: string, why: string): SecondsiteError {
  return new SecondsiteError(
    'SECONDSITE_ERR_METADATA_CORRUPT',
    `undo file ${path} is corrupt (${why}); the points that need it cannot be read. Resync the replica.`,
    { file: path, reason: why },
  );
}

/**
 * Chunk compression with LZ4 (lz4-napi: native, prebuilt per platform; see docs/design/replication.md
 * for the measurement that chose it). A chunk is sent compressed only when that saves at least ~5 %
 * (ratio >= 1.05); incompressible data goes raw, detected early from samples so it costs little CPU.
 * Zero chunks never come here (they are ZERO frames).
 */
import { compress, compressSync, uncompress, uncompressSync } from 'lz4-napi';
import { SecondsiteError } from '../../domain/errors.js';
import type { Compression } from '../../protocol/replication/messages.js';

export const MIN_COMPRESSION_RATIO = 1.05;

/** Chunks at least this big are probed with samples first (incompressible data skips the compressor). */
const PROBE_MIN_BYTES = 64 * 1024;
const PROBE_SAMPLE_BYTES = 4096;

/**
 * Early abort, as ZFS and btrfs do: compress four 4 KiB samples (at 0, 1/4, 1/2, 3/4 of the chunk);
 * if even they do not shrink by 5 %, the chunk is sent raw without running LZ4 over all of it.
 */
function probablyIncompressible(data: Buffer): boolean {
  if (data.length < PROBE_MIN_BYTES) return false;
  const q = Math.floor(data.length / 4);
  const sample = Buffer.concat([0, q, 2 * q, 3 * q].map((o) => data.subarray(o, o + PROBE_SAMPLE_BYTES)));
  return compressSync(sample).length * MIN_COMPRESSION_RATIO > sample.length;
}

export function compressChunk(data: Buffer): { compression: Compression; body: Buffer } {
  if (probablyIncompressible(data)) return { compression: 'none', body: data };
  const packed = compressSync(data);
  if (packed.length * MIN_COMPRESSION_RATIO <= data.length) return { compression: 'lz4', body: packed };
  return { compression: 'none', body: data };
}

/**
 * `compressChunk` with the LZ4 pass on the libuv threadpool (lz4-napi's async task), so several chunks
 * compress in parallel with each other and with the sender's hashing and TLS on the main thread. Same
 * choice of raw or LZ4 as `compressChunk`; the caller must not change `data` until it resolves.
 */
export async function compressChunkAsync(data: Buffer): Promise<{ compression: Compression; body: Buffer }> {
  if (probablyIncompressible(data)) return { compression: 'none', body: data };
  const packed = await compress(data);
  if (packed.length * MIN_COMPRESSION_RATIO <= data.length) return { compression: 'lz4', body: packed };
  return { compression: 'none', body: data };
}

/** Decompresses a chunk whose size prefix the frame decoder already checked against `lengthBytes`. */
export function decompressChunk(body: Buffer, lengthBytes: number): Buffer {
  checkSizePrefix(body, lengthBytes);
  let out: Buffer;
  try {
    out = uncompressSync(body);
  } catch (e) {
    throw notLz4(e);
  }
  return checkDecompressed(out, lengthBytes);
}

/** `decompressChunk` on the libuv threadpool (lz4-napi's async task); the same checks. */
export async function decompressChunkAsync(body: Buffer, lengthBytes: number): Promise<Buffer> {
  checkSizePrefix(body, lengthBytes);
  let out: Buffer;
  try {
    out = await uncompress(body);
  } catch (e) {
    throw notLz4(e);
  }
  return checkDecompressed(out, lengthBytes);
}

/** The 4-byte LE size prefix must equal the declared length before anything is decompressed. */
function checkSizePrefix(body: Buffer, lengthBytes: number): void {
  if (body.length < 4 || body.readUInt32LE(0) !== lengthBytes) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_BAD_FRAME',
      `lz4 chunk size prefix does not match ${lengthBytes}`,
    );
  }
}

function notLz4(e: unknown): SecondsiteError {
  return new SecondsiteError(
    'SECONDSITE_ERR_BAD_FRAME',
    `lz4 chunk does not decompress: ${String(e)}`,
    {},
    { cause: e },
  );
}

function checkDecompressed(out: Buffer, lengthBytes: number): Buffer {
  if (out.length !== lengthBytes) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_BAD_FRAME',
      `lz4 chunk decompressed to ${out.length} bytes, expected ${lengthBytes}`,
    );
  }
  return out;
}

const ZERO_SLICE = Buffer.alloc(64 * 1024);

/** True when every byte is zero (memcmp against a zero buffer, 64 KiB at a time). */
export function isAllZero(data: Buffer): boolean {
  for (let at = 0; at < data.length; at += ZERO_SLICE.length) {
    const n = Math.min(ZERO_SLICE.length, data.length - at);
    if (!data.subarray(at, at + n).equals(ZERO_SLICE.subarray(0, n))) return false;
  }
  return true;
}

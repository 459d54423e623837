/**
 * Chunk compression with LZ4 (lz4-napi: native, prebuilt per platform; see docs/design/replication.md
 * for the measurement that chose it). A chunk is sent compressed only when that saves at least ~5 %
 * (ratio >= 1.05); incompressible data goes raw. Zero chunks never come here (they are ZERO frames).
 */
import { compressSync, uncompressSync } from 'lz4-napi';
import { SecondsiteError } from '../../domain/errors.js';
import type { Compression } from '../../protocol/replication/messages.js';

export const MIN_COMPRESSION_RATIO = 1.05;

export function compressChunk(data: Buffer): { compression: Compression; body: Buffer } {
  const packed = compressSync(data);
  if (packed.length * MIN_COMPRESSION_RATIO <= data.length) return { compression: 'lz4', body: packed };
  return { compression: 'none', body: data };
}

/** Decompresses a chunk whose size prefix the frame decoder already checked against `lengthBytes`. */
export function decompressChunk(body: Buffer, lengthBytes: number): Buffer {
  if (body.length < 4 || body.readUInt32LE(0) !== lengthBytes) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_BAD_FRAME',
      `lz4 chunk size prefix does not match ${lengthBytes}`,
    );
  }
  let out: Buffer;
  try {
    out = uncompressSync(body);
  } catch (e) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_BAD_FRAME',
      `lz4 chunk does not decompress: ${String(e)}`,
      {},
      { cause: e },
    );
  }
  if (out.length !== lengthBytes) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_BAD_FRAME',
      `lz4 chunk decompressed to ${out.length} bytes, expected ${lengthBytes}`,
    );
  }
  return out;
}

/** True when every byte is zero (fast path on 8-byte words). */
export function isAllZero(data: Buffer): boolean {
  const words = Math.floor(data.length / 8);
  for (let i = 0; i < words; i++) if (data.readBigUInt64LE(i * 8) !== 0n) return false;
  for (let i = words * 8; i < data.length; i++) if (data[i] !== 0) return false;
  return true;
}

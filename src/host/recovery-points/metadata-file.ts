/**
 * Checksummed metadata files (catalogue, intent, view maps): `SSMETA1 <sha256 hex> <body bytes>\n<JSON>`.
 * Written by temp + datasync + rename + syncDir, so a reader sees the old or the new file whole; a
 * checksum or parse failure (media corruption, a bug) is SECONDSITE_ERR_METADATA_CORRUPT, never trusted.
 */
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import { SecondsiteError } from '../../domain/errors.js';
import type { Storage, StorageFile } from '../storage/storage.js';

const MAGIC = 'SSMETA1';

export function encodeMetadata(body: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(body), 'utf8');
  const sha = createHash('sha256').update(json).digest('hex');
  return Buffer.concat([Buffer.from(`${MAGIC} ${sha} ${json.length}\n`, 'utf8'), json]);
}

/** Parses an encoded metadata blob; throws METADATA_CORRUPT naming `what` when it does not verify. */
export function decodeMetadata(bytes: Buffer, what: string): unknown {
  const nl = bytes.indexOf(0x0a);
  const corrupt = (why: string): SecondsiteError =>
    new SecondsiteError(
      'SECONDSITE_ERR_METADATA_CORRUPT',
      `${what} is corrupt (${why}); it is not used. Resync the replica from the primary or restore the file.`,
      { file: what, reason: why },
    );
  if (nl < 0 || nl > 200) throw corrupt('no header');
  const m = /^SSMETA1 ([0-9a-f]{64}) (\d+)$/.exec(bytes.subarray(0, nl).toString('utf8'));
  if (!m) throw corrupt('bad header');
  const body = bytes.subarray(nl + 1);
  if (body.length !== Number(m[2])) throw corrupt(`length ${body.length} != ${m[2]}`);
  if (createHash('sha256').update(body).digest('hex') !== m[1]) throw corrupt('checksum mismatch');
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw corrupt('not JSON');
  }
}

export async function readWholeFile(file: StorageFile): Promise<Buffer> {
  const size = await file.sizeBytes();
  const buf = Buffer.alloc(size);
  let done = 0;
  while (done < size) {
    const n = await file.read(buf, done, size - done, done);
    if (n === 0) break;
    done += n;
  }
  return done === size ? buf : buf.subarray(0, done);
}

/** Reads and verifies a metadata file; null when it does not exist. */
export async function readMetadataFile(storage: Storage, path: string): Promise<unknown> {
  if (!(await storage.exists(path))) return null;
  const file = await storage.open(path, 'read');
  try {
    return decodeMetadata(await readWholeFile(file), path);
  } finally {
    await file.close();
  }
}

/** Atomically replaces `path` with `body`: durable when this returns. */
export async function writeMetadataFile(storage: Storage, path: string, body: unknown): Promise<void> {
  const tmp = `${path}.tmp`;
  const bytes = encodeMetadata(body);
  const file = await storage.open(tmp, 'create');
  try {
    await file.truncate(0);
    await file.write(bytes, 0, bytes.length, 0);
    await file.datasync();
  } finally {
    await file.close();
  }
  await storage.rename(tmp, path);
  await storage.syncDir(dirname(path));
}

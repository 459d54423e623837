/**
 * Whole-file atomic replace through the `Storage` shim: write `<path>.tmp`, datasync it, rename over
 * `<path>`, syncDir. After a crash at any step a reader finds the old file or the new one, whole (a
 * leftover `.tmp` is ignored and overwritten next time). Used for disk metadata and change-tracking state.
 */
import { dirname } from 'node:path';
import type { Storage } from '../storage/storage.js';

export async function replaceFileAtomically(storage: Storage, path: string, data: Buffer): Promise<void> {
  const tmp = `${path}.tmp`;
  const file = await storage.open(tmp, 'create');
  try {
    await file.truncate(0);
    await file.write(data, 0, data.length, 0);
    await file.datasync();
  } finally {
    await file.close();
  }
  await storage.rename(tmp, path);
  await storage.syncDir(dirname(path));
}

/** The whole content of a file, or undefined if it does not exist. */
export async function readWholeFile(storage: Storage, path: string): Promise<Buffer | undefined> {
  if (!(await storage.exists(path))) return undefined;
  const file = await storage.open(path, 'read');
  try {
    const size = await file.sizeBytes();
    const buf = Buffer.alloc(size);
    const n = await file.read(buf, 0, size, 0);
    return buf.subarray(0, n);
  } finally {
    await file.close();
  }
}

/**
 * Where a disk's files live: `<storageRoot>/disks/<diskId>.<kind>`. Disk ids are server-generated
 * (UUID-like) and are validated as plain names before they come near a path: letters, digits, `-` and
 * `_`, at most 128 characters, so `..`, `/`, NUL, absolute paths and Unicode look-alikes are refused.
 * Symlinks are the storage's business (NodeStorage opens with O_NOFOLLOW and can confine to the root).
 */
import { join } from 'node:path';
import { SecondsiteError } from '../../domain/errors.js';

const DISK_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export interface DiskPaths {
  readonly dir: string;
  /** The sparse raw image. */
  readonly image: string;
  /** Disk metadata (name, size, created), replaced atomically. */
  readonly meta: string;
  /** Change-tracking state (bitmaps, clean/open marker), replaced atomically. */
  readonly tracking: string;
  /** Copy-on-write side file of a live cycle snapshot (sparse, scratch: never needed after a restart). */
  readonly cow: string;
}

/** Throws SECONDSITE_ERR_UNSAFE_PATH unless `diskId` is a plain id usable as a file name. */
export function assertDiskId(diskId: string): void {
  if (!DISK_ID_RE.test(diskId)) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_UNSAFE_PATH',
      `the disk id ${JSON.stringify(diskId.slice(0, 200))} is not a plain id (letters, digits, '-' and '_', 1 to 128 characters)`,
      { diskId: diskId.slice(0, 200) },
    );
  }
}

export function disksDir(storageRoot: string): string {
  return join(storageRoot, 'disks');
}

export function diskPaths(storageRoot: string, diskId: string): DiskPaths {
  assertDiskId(diskId);
  const dir = disksDir(storageRoot);
  return {
    dir,
    image: join(dir, `${diskId}.raw`),
    meta: join(dir, `${diskId}.meta.json`),
    tracking: join(dir, `${diskId}.ctrack`),
    cow: join(dir, `${diskId}.cow`),
  };
}

/** The disk id a metadata file name belongs to, or undefined for any other name. */
export function diskIdOfMetaName(name: string): string | undefined {
  const m = /^(.+)\.meta\.json$/.exec(name);
  return m?.[1] !== undefined && DISK_ID_RE.test(m[1]) ? m[1] : undefined;
}

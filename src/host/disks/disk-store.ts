/**
 * `DiskStore`: a host's VM disks as sparse raw images under `<storageRoot>/disks/`, with metadata
 * (name, size, created) in `<diskId>.meta.json`. All I/O goes through the `Storage` shim.
 *
 * The metadata file is the commit point of every change, written by atomic replace:
 *   create  image created and sized (old content of an orphan image discarded), image datasynced, its
 *           name synced; then metadata. A crash before the metadata leaves an orphan image that
 *           `list()` ignores and the next `create()` of that id reuses from empty.
 *   grow    image extended (a hole) and datasynced; then metadata. A crash between leaves the image
 *           larger than its metadata, and opening trims it back (rolls the grow back).
 *   shrink  (only with `force`) metadata first; then the image is truncated. A crash between leaves the
 *           image larger than its metadata, and opening truncates it (rolls the shrink forward).
 *   delete  metadata unlinked and its name synced first (the disk is gone); then the image and the
 *           disk's other files (change-tracking state, CoW scratch).
 * So on open the metadata size is the truth and a larger image is cut to it.
 *
 * A disk open read-write cannot be opened read-write again, resized or deleted (SECONDSITE_ERR_DISK_BUSY).
 * `create` is idempotent: the same id with the same name and size returns the existing disk.
 */
import { createHash } from 'node:crypto';
import { SecondsiteError, isSecondsiteError } from '../../domain/errors.js';
import type { Clock } from '../../domain/clock.js';
import { formatBytes } from '../../domain/units.js';
import type { BlockDevice } from '../block-device/block-device.js';
import { FileBlockDevice, SYNC_WRITE_MAX_BYTES } from '../block-device/file.block-device.js';
import { PassThroughFilter } from '../block-device/pass-through.filter.js';
import type { Storage } from '../storage/storage.js';
import { readWholeFile, replaceFileAtomically } from './atomic-file.js';
import { diskIdOfMetaName, diskPaths, disksDir, type DiskPaths } from './disk-paths.js';

export interface DiskInfo {
  readonly diskId: string;
  readonly name: string;
  readonly sizeBytes: number;
  readonly createdWallMs: number;
}

/** Disk sizes are whole 512-byte sectors. */
export const DISK_SECTOR_BYTES = 512;
const META_FORMAT = 'secondsite.disk/1';

interface MetaFile {
  format: string;
  disk: DiskInfo;
  sha256: string;
}

export class DiskStore {
  private readonly writers = new Set<string>();

  private constructor(
    private readonly storage: Storage,
    readonly storageRoot: string,
    private readonly clock: Clock,
  ) {}

  /** Opens (creating if needed) the disk store under `storageRoot`. */
  static async open(storage: Storage, storageRoot: string, clock: Clock): Promise<DiskStore> {
    if (!(await storage.exists(disksDir(storageRoot)))) {
      await storage.mkdir(disksDir(storageRoot));
      await storage.syncDir(storageRoot); // the new directory's name must survive a power cut
    }
    return new DiskStore(storage, storageRoot, clock);
  }

  /** The file paths of a disk (for change tracking's state and CoW files). Validates the id. */
  paths(diskId: string): DiskPaths {
    return diskPaths(this.storageRoot, diskId);
  }

  async create(diskId: string, options: { name: string; sizeBytes: number }): Promise<DiskInfo> {
    const p = this.paths(diskId);
    assertSize(options.sizeBytes);
    assertName(options.name);
    const existing = await this.readMeta(p, diskId);
    if (existing) {
      if (existing.name === options.name && existing.sizeBytes === options.sizeBytes) return existing;
      throw new SecondsiteError(
        'SECONDSITE_ERR_ALREADY_EXISTS',
        `disk ${diskId} already exists as "${existing.name}" of ${formatBytes(existing.sizeBytes)}; choose another id or delete it first`,
        { diskId, existing, requested: options },
      );
    }
    const image = await this.storage.open(p.image, 'create');
    try {
      await image.truncate(0);
      await image.truncate(options.sizeBytes);
      await image.datasync();
    } catch (e) {
      throw mapFsError(e, diskId);
    } finally {
      await image.close();
    }
    await this.storage.syncDir(p.dir);
    const info: DiskInfo = {
      diskId,
      name: options.name,
      sizeBytes: options.sizeBytes,
      createdWallMs: this.clock.wallMs(),
    };
    await this.writeMeta(p, info);
    return info;
  }

  /**
   * Registers an image that was placed at the disk's image path by someone else (a failover commit
   * renames a promoted recovery image there). Idempotent; refuses when the image is missing, has
   * another size, or another disk of that id exists.
   */
  async adoptImage(diskId: string, options: { name: string; sizeBytes: number }): Promise<DiskInfo> {
    const p = this.paths(diskId);
    assertName(options.name);
    const existing = await this.readMeta(p, diskId);
    if (existing) {
      if (existing.sizeBytes === options.sizeBytes) return existing;
      throw new SecondsiteError(
        'SECONDSITE_ERR_ALREADY_EXISTS',
        `disk ${diskId} already exists as "${existing.name}" of ${formatBytes(existing.sizeBytes)}`,
        { diskId, existing },
      );
    }
    if (!(await this.storage.exists(p.image))) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `no image at ${p.image} to adopt as disk ${diskId}`,
        {
          diskId,
        },
      );
    }
    const image = await this.storage.open(p.image, 'readwrite');
    try {
      const size = await image.sizeBytes();
      if (size !== options.sizeBytes) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `the image of disk ${diskId} has ${size} bytes, not ${options.sizeBytes}`,
          { diskId, sizeBytes: size },
        );
      }
    } finally {
      await image.close();
    }
    const info: DiskInfo = {
      diskId,
      name: options.name,
      sizeBytes: options.sizeBytes,
      createdWallMs: this.clock.wallMs(),
    };
    await this.writeMeta(p, info);
    return info;
  }

  /** The disk's metadata; SECONDSITE_ERR_NOT_FOUND if there is no such disk. */
  async get(diskId: string): Promise<DiskInfo> {
    const info = await this.readMeta(this.paths(diskId), diskId);
    if (!info) throw notFound(diskId);
    return info;
  }

  /** All disks, sorted by id. */
  async list(): Promise<DiskInfo[]> {
    const out: DiskInfo[] = [];
    for (const name of await this.storage.list(disksDir(this.storageRoot))) {
      const diskId = diskIdOfMetaName(name);
      if (diskId === undefined) continue;
      const info = await this.readMeta(this.paths(diskId), diskId);
      if (info) out.push(info);
    }
    return out;
  }

  /**
   * Changes the size. Growing adds zeros (a hole). Shrinking discards the data past the new size and
   * is refused unless `force` is set.
   */
  async resize(diskId: string, sizeBytes: number, options: { force?: boolean } = {}): Promise<DiskInfo> {
    const p = this.paths(diskId);
    assertSize(sizeBytes);
    this.assertNotOpen(diskId, 'resize');
    const info = await this.get(diskId);
    if (sizeBytes === info.sizeBytes) return info;
    const next: DiskInfo = { ...info, sizeBytes };
    if (sizeBytes < info.sizeBytes) {
      if (!options.force) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `shrinking disk ${diskId} from ${formatBytes(info.sizeBytes)} to ${formatBytes(sizeBytes)} would discard the data past the new end; shrink the file system inside the VM first, then resize with force`,
          { diskId, sizeBytes, currentSizeBytes: info.sizeBytes },
        );
      }
      await this.writeMeta(p, next);
      await this.setImageSize(p, diskId, sizeBytes);
    } else {
      await this.setImageSize(p, diskId, sizeBytes);
      await this.writeMeta(p, next);
    }
    return next;
  }

  /** Deletes the disk and all its files. Returns false if it did not exist. */
  async delete(diskId: string): Promise<boolean> {
    const p = this.paths(diskId);
    this.assertNotOpen(diskId, 'delete');
    const existed = await this.storage.exists(p.meta);
    if (existed) {
      await this.storage.unlink(p.meta);
      await this.storage.syncDir(p.dir);
    }
    const prefix = `${diskId}.`;
    for (const name of await this.storage.list(p.dir)) {
      if (name.startsWith(prefix)) await this.storage.unlink(`${p.dir}/${name}`);
    }
    await this.storage.syncDir(p.dir);
    return existed;
  }

  /**
   * Opens the disk as a block device. At most one read-write opener at a time; it must close() the
   * device to release the disk.
   */
  async openDevice(diskId: string, options: { readOnly?: boolean } = {}): Promise<BlockDevice> {
    const p = this.paths(diskId);
    const readOnly = options.readOnly ?? false;
    if (!readOnly) this.assertNotOpen(diskId, 'open read-write');
    const info = await this.get(diskId);
    if (!readOnly) this.writers.add(diskId);
    try {
      const file = await this.storage.open(p.image, readOnly ? 'read' : 'readwrite');
      const actual = await file.sizeBytes();
      if (actual !== info.sizeBytes && !readOnly) {
        // Finish (shrink) or roll back (grow) a resize that a crash interrupted: metadata is the truth.
        await file.truncate(info.sizeBytes);
        await file.datasync();
      }
      const device = await FileBlockDevice.open(file, {
        readOnly,
        sizeBytes: info.sizeBytes,
        syncWriteMaxBytes: SYNC_WRITE_MAX_BYTES,
      });
      return readOnly ? device : new ReleasingDevice(device, () => this.writers.delete(diskId));
    } catch (e) {
      if (!readOnly) this.writers.delete(diskId);
      throw e;
    }
  }

  private assertNotOpen(diskId: string, what: string): void {
    if (this.writers.has(diskId)) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_DISK_BUSY',
        `cannot ${what} disk ${diskId}: it is open read-write (served to a VM or replicating); close it first`,
        { diskId },
      );
    }
  }

  private async setImageSize(p: DiskPaths, diskId: string, sizeBytes: number): Promise<void> {
    const image = await this.storage.open(p.image, 'readwrite');
    try {
      await image.truncate(sizeBytes);
      await image.datasync();
    } catch (e) {
      throw mapFsError(e, diskId);
    } finally {
      await image.close();
    }
  }

  private async writeMeta(p: DiskPaths, info: DiskInfo): Promise<void> {
    const file: MetaFile = { format: META_FORMAT, disk: info, sha256: digest(info) };
    await replaceFileAtomically(this.storage, p.meta, Buffer.from(`${JSON.stringify(file, null, 2)}\n`));
  }

  private async readMeta(p: DiskPaths, diskId: string): Promise<DiskInfo | undefined> {
    const bytes = await readWholeFile(this.storage, p.meta);
    if (bytes === undefined) return undefined;
    let file: MetaFile;
    try {
      file = JSON.parse(bytes.toString('utf8')) as MetaFile;
    } catch {
      throw corrupt(diskId, p.meta, 'not JSON');
    }
    if (file.format !== META_FORMAT) throw corrupt(diskId, p.meta, `unknown format ${String(file.format)}`);
    if (digest(file.disk) !== file.sha256) throw corrupt(diskId, p.meta, 'checksum mismatch');
    if (file.disk.diskId !== diskId) throw corrupt(diskId, p.meta, `it names disk ${file.disk.diskId}`);
    return file.disk;
  }
}

/** Releases the disk's read-write claim when the device is closed. */
class ReleasingDevice extends PassThroughFilter {
  private released = false;

  constructor(
    inner: BlockDevice,
    private readonly release: () => void,
  ) {
    super(inner);
  }

  override async close(): Promise<void> {
    if (this.released) return;
    this.released = true;
    try {
      await this.inner.close();
    } finally {
      this.release();
    }
  }
}

function digest(info: DiskInfo): string {
  const canonical = JSON.stringify([info.diskId, info.name, info.sizeBytes, info.createdWallMs]);
  return createHash('sha256').update(canonical).digest('hex');
}

function assertSize(sizeBytes: number): void {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % DISK_SECTOR_BYTES !== 0) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `a disk size must be a positive multiple of ${DISK_SECTOR_BYTES} bytes, got ${sizeBytes}`,
      { sizeBytes },
    );
  }
}

function assertName(name: string): void {
  // eslint-disable-next-line no-control-regex
  if (name.length === 0 || name.length > 256 || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      'a disk name must be 1 to 256 characters without control characters',
      { name: name.slice(0, 300) },
    );
  }
}

function notFound(diskId: string): SecondsiteError {
  return new SecondsiteError('SECONDSITE_ERR_NOT_FOUND', `there is no disk ${diskId} on this host`, {
    diskId,
  });
}

function corrupt(diskId: string, path: string, why: string): SecondsiteError {
  return new SecondsiteError(
    'SECONDSITE_ERR_METADATA_CORRUPT',
    `the metadata of disk ${diskId} (${path}) is corrupt (${why}); restore it or delete the disk`,
    { diskId, path, reason: why },
  );
}

function mapFsError(e: unknown, diskId: string): unknown {
  if (isSecondsiteError(e)) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new SecondsiteError(
      'SECONDSITE_ERR_NO_SPACE',
      `no space to size disk ${diskId}`,
      { diskId },
      { cause: e },
    );
  }
  if (code === 'EFBIG') {
    return new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `disk ${diskId} is larger than the file system of the storage root allows`,
      { diskId },
      { cause: e },
    );
  }
  return e;
}

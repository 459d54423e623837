/**
 * The agent's disks: every disk in the store is opened once, read-write, wrapped in change tracking
 * (always on, so a disk has a known change history from its first write), and served on the agent's
 * NBD socket under its disk id. Create, resize and delete keep the store, the open device and the
 * export table in step; each is idempotent where it can be (create with the same settings, delete of a
 * missing disk) and refuses with a reason where it cannot.
 */
import type { Clock } from '../../domain/clock.js';
import { SecondsiteError } from '../../domain/errors.js';
import type { DiskView } from '../../protocol/host-api/disks.schema.js';
import { ChangeTrackingFilter } from '../change-tracking/change-tracking.filter.js';
import { DiskStore, type DiskInfo } from '../disks/disk-store.js';
import type { NbdServer } from '../nbd/nbd-server.js';
import type { Logger } from '../../observability/logger.js';
import type { Storage } from '../storage/storage.js';

/**
 * Change-tracking granularity of the agent's disks. Small random writes dirty whole tracking blocks, so
 * the block size bounds how much a 4 KiB write costs on the wire and in copy-on-write: 16 KiB keeps
 * that amplification at 4x for 4 KiB writes (1x from 16 KiB up) for 8 MiB of bitmap per TiB of disk.
 */
export const TRACKING_BLOCK_BYTES = 16 * 1024;

const EXPORT_PIECE_BYTES = 1024 * 1024;

export class DiskService {
  private readonly open = new Map<string, ChangeTrackingFilter>();

  private constructor(
    private readonly storage: Storage,
    readonly store: DiskStore,
    private readonly nbd: NbdServer,
    private readonly nbdSocket: string,
    private readonly log: Logger,
  ) {}

  static async start(
    storage: Storage,
    storageRoot: string,
    clock: Clock,
    nbd: NbdServer,
    nbdSocket: string,
    log: Logger,
  ): Promise<DiskService> {
    const store = await DiskStore.open(storage, storageRoot, clock);
    const service = new DiskService(storage, store, nbd, nbdSocket, log);
    for (const disk of await store.list()) {
      try {
        await service.serve(disk.diskId);
      } catch (e) {
        // one broken disk (e.g. its image left with a reverse-replication seeding a crash cut short)
        // must not keep the agent, and every other disk, down
        log.error('a disk could not be opened; it is not served', { diskId: disk.diskId, error: e });
      }
    }
    return service;
  }

  /** The open, change-tracked device of a disk (the one the VM writes through and replication cuts). */
  tracked(diskId: string): ChangeTrackingFilter {
    const d = this.open.get(diskId);
    if (!d)
      throw new SecondsiteError('SECONDSITE_ERR_NOT_FOUND', `no disk '${diskId}' on this host`, { diskId });
    return d;
  }

  async list(): Promise<DiskView[]> {
    return (await this.store.list()).map((d) => this.view(d));
  }

  async get(diskId: string): Promise<DiskView> {
    return this.view(await this.store.get(diskId));
  }

  async create(
    diskId: string,
    name: string,
    sizeBytes: number,
  ): Promise<{ disk: DiskView; created: boolean }> {
    const existed = this.open.has(diskId);
    const info = await this.store.create(diskId, { name, sizeBytes });
    if (!existed) await this.serve(diskId);
    return { disk: this.view(info), created: !existed };
  }

  async resize(diskId: string, sizeBytes: number, force: boolean): Promise<DiskView> {
    await this.unserve(diskId);
    try {
      return this.view(await this.store.resize(diskId, sizeBytes, { force }));
    } finally {
      await this.serve(diskId);
    }
  }

  async delete(diskId: string): Promise<boolean> {
    await this.unserve(diskId);
    return this.store.delete(diskId);
  }

  /**
   * Registers an image placed at the disk's path (a failover commit) and opens it with change tracking,
   * without exporting it: the caller already serves the disk's export and switches it to this device.
   * After a restart the disk is served like any other.
   */
  async adoptImage(diskId: string, name: string, sizeBytes: number): Promise<ChangeTrackingFilter> {
    await this.store.adoptImage(diskId, { name, sizeBytes });
    const open = this.open.get(diskId);
    if (open) return open;
    const device = await this.openTracked(diskId);
    this.open.set(diskId, device);
    return device;
  }

  /**
   * Stops serving a disk and closes it (its clients are disconnected), keeping its files: reverse
   * replication then moves the image into a replica store and `forget`s the rest.
   */
  async release(diskId: string): Promise<string> {
    await this.store.get(diskId); // NOT_FOUND names the disk
    await this.unserve(diskId);
    return this.store.paths(diskId).image;
  }

  /** Removes what is left of a released disk whose image was moved away (metadata, tracking state). */
  async forget(diskId: string): Promise<void> {
    await this.unserve(diskId);
    await this.store.delete(diskId);
  }

  /**
   * Offline initial replication, step 1: writes a sparse copy of the disk's image to `<toDir>/<diskId>.raw`
   * (only allocated extents are read and written). The disk may be in use: the copy need not be
   * consistent, because replication enabled with an existing copy starts with a digest resync.
   */
  async exportImage(
    diskId: string,
    toDir: string,
  ): Promise<{ path: string; sizeBytes: number; copiedBytes: number }> {
    const device = this.tracked(diskId);
    const path = `${toDir}/${diskId}.raw`;
    await this.storage.mkdir(toDir);
    const out = await this.storage.open(path, 'create');
    let copiedBytes = 0;
    try {
      await out.truncate(0);
      await out.truncate(device.sizeBytes);
      for (let at = 0; at < device.sizeBytes;) {
        const extents = await device.extents(at, device.sizeBytes - at);
        for (const e of extents) {
          if (!e.hole && !e.zero) {
            for (let o = e.offsetBytes; o < e.offsetBytes + e.lengthBytes; o += EXPORT_PIECE_BYTES) {
              const len = Math.min(EXPORT_PIECE_BYTES, e.offsetBytes + e.lengthBytes - o);
              await out.write(await device.read(o, len), 0, len, o);
              copiedBytes += len;
            }
          }
          at = e.offsetBytes + e.lengthBytes;
        }
        if (extents.length === 0) break;
      }
      await out.datasync();
    } finally {
      await out.close();
    }
    await this.storage.syncDir(toDir);
    return { path, sizeBytes: device.sizeBytes, copiedBytes };
  }

  /** True when the disk's image file exists (false after it was moved into a replica store). */
  hasImage(diskId: string): Promise<boolean> {
    return this.storage.exists(this.store.paths(diskId).image);
  }

  /** The image path of a disk id on this host (where a failover commit puts a promoted image). */
  imagePath(diskId: string): string {
    return this.store.paths(diskId).image;
  }

  async close(): Promise<void> {
    for (const diskId of [...this.open.keys()]) await this.unserve(diskId);
  }

  private async serve(diskId: string): Promise<void> {
    const device = await this.openTracked(diskId);
    this.open.set(diskId, device);
    this.nbd.addExport(diskId, device, { description: `secondsite disk ${diskId}` });
    this.log.debug('disk served', { diskId, sizeBytes: device.sizeBytes });
  }

  private async openTracked(diskId: string): Promise<ChangeTrackingFilter> {
    const inner = await this.store.openDevice(diskId);
    const paths = this.store.paths(diskId);
    let device: ChangeTrackingFilter;
    try {
      device = await ChangeTrackingFilter.open(this.storage, inner, {
        diskId,
        statePath: paths.tracking,
        cowPath: paths.cow,
        trackingBlockBytes: TRACKING_BLOCK_BYTES,
      });
    } catch (e) {
      await inner.close();
      throw e;
    }
    return device;
  }

  private async unserve(diskId: string): Promise<void> {
    const device = this.open.get(diskId);
    if (!device) return;
    // Disconnect the disk's NBD clients and wait for their calls, so none touches a closed device.
    const dropped = await this.nbd.disconnectExport(diskId);
    if (dropped > 0)
      this.log.warn('disconnected NBD clients of a disk being closed', { diskId, connections: dropped });
    this.open.delete(diskId);
    await device.flush();
    await device.close();
  }

  private view(d: DiskInfo): DiskView {
    return {
      diskId: d.diskId,
      name: d.name,
      sizeBytes: d.sizeBytes,
      createdWallMs: d.createdWallMs,
      exportName: d.diskId,
      nbdUri: `nbd+unix:///${encodeURIComponent(d.diskId)}?socket=${this.nbdSocket}`,
    };
  }
}

/**
 * A copy-on-write overlay over a read-only point view, as a BlockDevice (so the NBD server can serve a
 * test-failover or recovery disk directly). Writes go, at 4 KiB block granularity, into a sparse
 * overlay file; a block partly written for the first time is first filled from the point (read-modify-
 * write). Reads take owned blocks from the overlay and the rest from the point. `flush()` datasyncs the
 * overlay and then atomically writes the map of owned blocks, so flushed writes survive a restart
 * (NBD semantics); unflushed writes may be lost. The point, the base and the undo files are never
 * written.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { BlockDevice, BlockExtent, WriteFlags, ZeroFlags } from '../block-device/block-device.js';
import type { Storage, StorageFile } from '../storage/storage.js';
import { ExtentMap, gapsOf } from './extent-map.js';
import { readMetadataFile, writeMetadataFile } from './metadata-file.js';
import type { PointDiskReader } from './replica-store.js';
import { readFully } from './undo-file.js';

export const OVERLAY_BLOCK_BYTES = 4096;

interface OverlayMapBody {
  readonly format: 'secondsite-overlay-map-1';
  readonly blockBytes: number;
  readonly owned: Array<[number, number]>;
}

export class CowOverlayDevice implements BlockDevice {
  readonly readOnly = false;
  private readonly owned = new ExtentMap<null>(() => null);
  private closed = false;

  private constructor(
    private readonly storage: Storage,
    private readonly mapPath: string,
    private readonly file: StorageFile,
    private readonly lower: PointDiskReader,
  ) {}

  get sizeBytes(): number {
    return this.lower.sizeBytes;
  }

  /** Opens the overlay `<dir>/<diskId>.cow` over `lower`, with the owned blocks of the last flush. */
  static async open(
    storage: Storage,
    dir: string,
    diskId: string,
    lower: PointDiskReader,
  ): Promise<CowOverlayDevice> {
    const mapPath = `${dir}/${diskId}.map`;
    const body = (await readMetadataFile(storage, mapPath)) as OverlayMapBody | null;
    const file = await storage.open(`${dir}/${diskId}.cow`, 'create');
    await storage.syncDir(dir);
    const dev = new CowOverlayDevice(storage, mapPath, file, lower);
    if (body !== null) {
      if (body.format !== 'secondsite-overlay-map-1' || body.blockBytes !== OVERLAY_BLOCK_BYTES) {
        await file.close();
        throw new SecondsiteError(
          'SECONDSITE_ERR_METADATA_CORRUPT',
          `overlay map ${mapPath} has an unknown format`,
          {
            file: mapPath,
          },
        );
      }
      for (const [o, l] of body.owned) dev.owned.set(o, l, null);
    }
    return dev;
  }

  async read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    this.checkOpen();
    const buf = Buffer.alloc(lengthBytes);
    const range = { offsetBytes, lengthBytes };
    const mine = this.owned.covered(offsetBytes, lengthBytes);
    for (const p of mine)
      await readFully(this.file, buf, p.offsetBytes - offsetBytes, p.lengthBytes, p.offsetBytes);
    for (const g of gapsOf(range, mine)) {
      const data = await this.lower.read(g.offsetBytes, g.lengthBytes);
      data.copy(buf, g.offsetBytes - offsetBytes);
    }
    return buf;
  }

  async write(offsetBytes: number, data: Buffer, flags: WriteFlags): Promise<void> {
    this.checkOpen();
    await this.ownEdges(offsetBytes, data.length);
    await this.file.write(data, 0, data.length, offsetBytes);
    this.markOwned(offsetBytes, data.length);
    if (flags.fua) await this.flush();
  }

  async flush(): Promise<void> {
    this.checkOpen();
    await this.file.datasync();
    const body: OverlayMapBody = {
      format: 'secondsite-overlay-map-1',
      blockBytes: OVERLAY_BLOCK_BYTES,
      owned: this.owned.entries().map((e) => [e.offsetBytes, e.lengthBytes]),
    };
    await writeMetadataFile(this.storage, this.mapPath, body);
  }

  /** Trim is a hint: the range keeps reading its current content. */
  trim(_offsetBytes: number, _lengthBytes: number, flags: WriteFlags): Promise<void> {
    this.checkOpen();
    return flags.fua ? this.flush() : Promise.resolve();
  }

  async writeZeroes(offsetBytes: number, lengthBytes: number, flags: ZeroFlags): Promise<void> {
    this.checkOpen();
    const end = offsetBytes + lengthBytes;
    const firstFull = Math.ceil(offsetBytes / OVERLAY_BLOCK_BYTES) * OVERLAY_BLOCK_BYTES;
    const lastFull = Math.min(Math.floor(end / OVERLAY_BLOCK_BYTES) * OVERLAY_BLOCK_BYTES, end);
    if (flags.noHole || firstFull >= lastFull) {
      await this.write(offsetBytes, Buffer.alloc(lengthBytes), { fua: false });
    } else {
      if (firstFull > offsetBytes)
        await this.write(offsetBytes, Buffer.alloc(firstFull - offsetBytes), { fua: false });
      await this.file.punchHole(firstFull, lastFull - firstFull);
      this.markOwned(firstFull, lastFull - firstFull);
      if (end > lastFull) await this.write(lastFull, Buffer.alloc(end - lastFull), { fua: false });
    }
    if (flags.fua) await this.flush();
  }

  async extents(offsetBytes: number, lengthBytes: number): Promise<BlockExtent[]> {
    this.checkOpen();
    const out: BlockExtent[] = [];
    const range = { offsetBytes, lengthBytes };
    const mine = this.owned.covered(offsetBytes, lengthBytes);
    for (const p of mine) {
      for (const a of await this.file.allocation(p.offsetBytes, p.lengthBytes)) {
        out.push({ offsetBytes: a.offsetBytes, lengthBytes: a.lengthBytes, hole: !a.data, zero: !a.data });
      }
    }
    for (const g of gapsOf(range, mine)) {
      for (const a of await this.lower.allocation(g.offsetBytes, g.lengthBytes)) {
        out.push({ offsetBytes: a.offsetBytes, lengthBytes: a.lengthBytes, hole: !a.data, zero: !a.data });
      }
    }
    return out.sort((a, b) => a.offsetBytes - b.offsetBytes);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.file.close();
    await this.lower.close();
  }

  /** Fills the partly written, not yet owned edge blocks of a write from the point. */
  private async ownEdges(offsetBytes: number, lengthBytes: number): Promise<void> {
    const end = offsetBytes + lengthBytes;
    const edges = new Set<number>();
    if (offsetBytes % OVERLAY_BLOCK_BYTES !== 0) edges.add(Math.floor(offsetBytes / OVERLAY_BLOCK_BYTES));
    if (end % OVERLAY_BLOCK_BYTES !== 0) edges.add(Math.floor(end / OVERLAY_BLOCK_BYTES));
    for (const block of edges) {
      const start = block * OVERLAY_BLOCK_BYTES;
      const len = Math.min(OVERLAY_BLOCK_BYTES, this.sizeBytes - start);
      if (this.owned.covered(start, len).length > 0) continue;
      const old = await this.lower.read(start, len);
      await this.file.write(old, 0, len, start);
    }
  }

  private markOwned(offsetBytes: number, lengthBytes: number): void {
    const start = Math.floor(offsetBytes / OVERLAY_BLOCK_BYTES) * OVERLAY_BLOCK_BYTES;
    const end = Math.min(
      Math.ceil((offsetBytes + lengthBytes) / OVERLAY_BLOCK_BYTES) * OVERLAY_BLOCK_BYTES,
      this.sizeBytes,
    );
    if (end > start) this.owned.set(start, end - start, null);
  }

  private checkOpen(): void {
    if (this.closed)
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_STATE', 'the overlay disk is closed', {});
  }
}

/**
 * Promotion: turning a copy-on-write view of a retained point into plain disk images, in place (the
 * commit of a failover, docs/design/failover.md section 5). Per disk: roll the base back to the point
 * by writing the point's content over every range changed after it (that content lives in undo files
 * only, so the base is never read while it is being rewritten), then write the view's own blocks over
 * it, cut the image to the point's size and datasync. Only when every disk is done are the bases
 * renamed to their targets. Every step reads only files it never writes, so the whole sequence can be
 * run again from the start after a crash and yields the same images; a base already renamed means its
 * disk is done.
 */
import { coalesce, type ByteRange } from '../../domain/replication/extent-set.js';
import type { Storage, StorageFile } from '../storage/storage.js';
import { readMetadataFile } from './metadata-file.js';
import type { StoreLayout } from './store-layout.js';
import { readFully } from './undo-file.js';

export interface PromotionIntent {
  readonly format: 'secondsite-promote-1';
  readonly viewId: string;
  readonly pointId: string;
  /** Per disk id, the absolute path its image is renamed to. */
  readonly targets: Readonly<Record<string, string>>;
  /** Per disk id, its size at the point. */
  readonly diskSizes: Readonly<Record<string, number>>;
}

export interface PromotionSource {
  /** Ranges of `diskId` changed after `pointId` (the union of the undo chain's ranges). */
  changedAfter(pointId: string, diskId: string): ByteRange[];
  /** Reads the point's content of a range that `changedAfter` returned (undo files only). */
  readPointUnlocked(
    pointId: string,
    diskId: string,
    offsetBytes: number,
    lengthBytes: number,
  ): Promise<Buffer>;
  baseFile(diskId: string): StorageFile;
}

const PIECE_BYTES = 1024 * 1024;

interface OverlayMapBody {
  readonly format: string;
  readonly owned: Array<[number, number]>;
}

/** Rewrites every base of `intent` to the promoted content (idempotent). Renames are the caller's. */
export async function rewriteBases(
  storage: Storage,
  layout: StoreLayout,
  intent: PromotionIntent,
  source: PromotionSource,
): Promise<void> {
  for (const diskId of Object.keys(intent.targets)) {
    if (!(await storage.exists(layout.base(diskId)))) continue; // renamed: this disk is done
    const base = source.baseFile(diskId);
    for (const r of source.changedAfter(intent.pointId, diskId)) {
      for (let at = r.offsetBytes; at < r.offsetBytes + r.lengthBytes; at += PIECE_BYTES) {
        const len = Math.min(PIECE_BYTES, r.offsetBytes + r.lengthBytes - at);
        const data = await source.readPointUnlocked(intent.pointId, diskId, at, len);
        await writeOrPunch(base, at, data);
      }
    }
    await applyOverlay(storage, layout.viewDir(intent.viewId), diskId, base);
    const sizeBytes = intent.diskSizes[diskId];
    if (sizeBytes !== undefined) await base.truncate(sizeBytes);
    await base.datasync();
  }
}

/** Writes the view's own blocks of `diskId` (data and punched holes) over `base`. */
async function applyOverlay(
  storage: Storage,
  viewDir: string,
  diskId: string,
  base: StorageFile,
): Promise<void> {
  const map = (await readMetadataFile(storage, `${viewDir}/${diskId}.map`)) as OverlayMapBody | null;
  if (map === null) return; // nothing was flushed into the view: the point's content stands
  const cow = await storage.open(`${viewDir}/${diskId}.cow`, 'read');
  try {
    for (const r of coalesce(map.owned.map(([offsetBytes, lengthBytes]) => ({ offsetBytes, lengthBytes })))) {
      for (const e of await cow.allocation(r.offsetBytes, r.lengthBytes)) {
        if (!e.data) {
          await base.punchHole(e.offsetBytes, e.lengthBytes);
          continue;
        }
        for (let at = e.offsetBytes; at < e.offsetBytes + e.lengthBytes; at += PIECE_BYTES) {
          const len = Math.min(PIECE_BYTES, e.offsetBytes + e.lengthBytes - at);
          const buf = Buffer.alloc(len);
          await readFully(cow, buf, 0, len, at);
          await base.write(buf, 0, len, at);
        }
      }
    }
  } finally {
    await cow.close();
  }
}

async function writeOrPunch(file: StorageFile, offsetBytes: number, data: Buffer): Promise<void> {
  if (data.every((b) => b === 0)) await file.punchHole(offsetBytes, data.length);
  else await file.write(data, 0, data.length, offsetBytes);
}

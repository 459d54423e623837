/**
 * Seeding a recovery-point store from existing disk images (reverse replication: the old primary's
 * disks become the base of the new replica, docs/design/failover.md section 8). The images are renamed
 * in (same file system, no copy) and the store gets one point, the seed, holding exactly their
 * content; the first cycle from the new primary is a resync that compares digests against it and sends
 * only what differs.
 *
 * Crash-safe by intent: `seed.meta` (the images and their sources) is written first (after clearing
 * the staging an empty store may hold); a rename replaces whatever base an empty store had, and is
 * skipped for an image already moved; the catalogue is written last and then the intent removed. `finishSeeding`
 * (run before a store is opened) completes an interrupted seeding the same way.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Storage } from '../storage/storage.js';
import type { CatalogueBody, StoredPoint } from './catalogue.js';
import { readMetadataFile, writeMetadataFile } from './metadata-file.js';
import { StoreLayout, checkPlainName } from './store-layout.js';

export interface SeedIntent {
  readonly format: 'secondsite-seed-1';
  readonly relationshipId: string;
  readonly epoch: number;
  readonly cutWallMs: number;
  readonly images: ReadonlyArray<{
    readonly diskId: string;
    readonly sourcePath: string;
    readonly sizeBytes: number;
  }>;
}

export const SEED_POINT_ID = 'rp-1';

/** Seeds `<storageDir>/<relationshipId>` from the images; idempotent for the same request. */
export async function seedStore(storage: Storage, storageDir: string, intent: SeedIntent): Promise<void> {
  checkPlainName('relationship id', intent.relationshipId);
  for (const i of intent.images) checkPlainName('disk id', i.diskId);
  const layout = new StoreLayout(`${storageDir}/${intent.relationshipId}`);
  const existing = (await readMetadataFile(storage, layout.catalogue)) as CatalogueBody | null;
  // an empty store (opened, e.g. at a restart, after a crash cut an earlier seeding short before its
  // intent) may be seeded; one holding points may not
  if (existing !== null && existing.points.length > 0 && !(await storage.exists(layout.seed))) {
    const seed = existing.points[0];
    if (existing.points.length === 1 && seed?.cycleId === 'seed' && existing.epoch === intent.epoch) return;
    throw new SecondsiteError(
      'SECONDSITE_ERR_ALREADY_EXISTS',
      `this host already keeps a replica of ${intent.relationshipId} (${existing.points.length} points); delete it before seeding a new one`,
      { relationshipId: intent.relationshipId },
    );
  }
  for (const dir of [layout.dir, layout.disksDir, layout.undoDir, layout.stagingDir, layout.viewsDir])
    await storage.mkdir(dir);
  await storage.syncDir(storageDir);
  await storage.syncDir(layout.dir);
  if (!(await storage.exists(layout.seed))) {
    // an empty store may hold a first cycle cut short (staged in place into its bases): its staging
    // must not be adopted by a later cycle, and finish() replaces the bases with the images
    await storage.removeTree(layout.stagingDir);
    await storage.mkdir(layout.stagingDir);
    await storage.syncDir(layout.dir);
    for (const i of intent.images) {
      if (!(await storage.exists(i.sourcePath))) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_NOT_FOUND',
          `no image ${i.sourcePath} for disk ${i.diskId}`,
          {
            diskId: i.diskId,
          },
        );
      }
    }
    await writeMetadataFile(storage, layout.seed, intent);
  }
  await finish(storage, layout, intent);
}

/** Completes a seeding interrupted by a crash; false when none was pending. */
export async function finishSeeding(
  storage: Storage,
  storageDir: string,
  relationshipId: string,
): Promise<boolean> {
  const layout = new StoreLayout(`${storageDir}/${relationshipId}`);
  const intent = (await readMetadataFile(storage, layout.seed)) as SeedIntent | null;
  if (intent === null) return false;
  if (intent.format !== 'secondsite-seed-1') {
    throw new SecondsiteError(
      'SECONDSITE_ERR_METADATA_CORRUPT',
      `seed intent ${layout.seed} has an unknown format`,
      {
        file: layout.seed,
      },
    );
  }
  await finish(storage, layout, intent);
  return true;
}

async function finish(storage: Storage, layout: StoreLayout, intent: SeedIntent): Promise<void> {
  const sourceDirs = new Set<string>();
  for (const i of intent.images) {
    // the source gone and the base there: renamed before a crash; otherwise the rename replaces any
    // base an empty store had (zeros, or a cut-short first cycle's bytes)
    if (!(await storage.exists(i.sourcePath)) && (await storage.exists(layout.base(i.diskId)))) continue;
    await storage.rename(i.sourcePath, layout.base(i.diskId));
    sourceDirs.add(i.sourcePath.slice(0, i.sourcePath.lastIndexOf('/')));
  }
  await storage.syncDir(layout.disksDir);
  for (const d of sourceDirs) await storage.syncDir(d);
  const diskSizes: Record<string, number> = {};
  for (const i of intent.images) diskSizes[i.diskId] = i.sizeBytes;
  const seed: StoredPoint = {
    pointId: SEED_POINT_ID,
    sequence: 1,
    epoch: intent.epoch,
    cycleId: 'seed',
    cutWallMs: intent.cutWallMs,
    committedWallMs: intent.cutWallMs,
    consistency: 'crash-consistent',
    diskSizes,
    undo: [],
  };
  const cat: CatalogueBody = {
    format: 'secondsite-catalogue-2',
    relationshipId: intent.relationshipId,
    epoch: intent.epoch,
    nextSequence: 2,
    nextFileId: 1,
    disks: intent.images.map((i) => ({ diskId: i.diskId, sizeBytes: i.sizeBytes })),
    points: [seed],
  };
  await writeMetadataFile(storage, layout.catalogue, cat);
  await storage.unlink(layout.seed);
  await storage.syncDir(layout.dir);
}

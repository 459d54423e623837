/**
 * The catalogue of one relationship: epoch, disks and sizes, retained points (oldest first) and, for
 * every point but the latest, the undo file that restores it from the next one. Replaced atomically
 * (metadata-file.ts); the store keeps an immutable copy in memory and swaps it after each publish.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { RecoveryPointInfo } from './replica-store.js';

export interface StoredPoint extends RecoveryPointInfo {
  /** Disk sizes at this point; a disk added later is not part of the point. */
  readonly diskSizes: Readonly<Record<string, number>>;
  /** Undo file restoring this point from the next one; null for the latest point. */
  readonly undoFile: string | null;
}

export interface CatalogueBody {
  readonly format: 'secondsite-catalogue-1';
  readonly relationshipId: string;
  readonly epoch: number;
  readonly nextSequence: number;
  /** Counter for unique undo file names, never reused. */
  readonly nextFileId: number;
  readonly disks: ReadonlyArray<{ readonly diskId: string; readonly sizeBytes: number }>;
  readonly points: readonly StoredPoint[];
}

export function emptyCatalogue(relationshipId: string): CatalogueBody {
  return {
    format: 'secondsite-catalogue-1',
    relationshipId,
    epoch: 0,
    nextSequence: 1,
    nextFileId: 1,
    disks: [],
    points: [],
  };
}

/** Checks the shape and invariants of a decoded catalogue; METADATA_CORRUPT when broken. */
export function checkCatalogue(body: unknown, relationshipId: string, path: string): CatalogueBody {
  const bad = (why: string): SecondsiteError =>
    new SecondsiteError(
      'SECONDSITE_ERR_METADATA_CORRUPT',
      `catalogue ${path} is invalid (${why}); it is not used. Resync the replica from the primary.`,
      { file: path, reason: why },
    );
  const c = body as Partial<CatalogueBody> | null;
  if (c === null || typeof c !== 'object' || c.format !== 'secondsite-catalogue-1')
    throw bad('unknown format');
  if (c.relationshipId !== relationshipId) throw bad(`belongs to relationship ${String(c.relationshipId)}`);
  if (!Array.isArray(c.points) || !Array.isArray(c.disks)) throw bad('missing lists');
  if (typeof c.epoch !== 'number' || typeof c.nextSequence !== 'number' || typeof c.nextFileId !== 'number') {
    throw bad('missing counters');
  }
  let prev = 0;
  const points = c.points as StoredPoint[];
  const nextSequence = c.nextSequence;
  points.forEach((p, i) => {
    if (typeof p.sequence !== 'number' || p.sequence <= prev || p.sequence >= nextSequence) {
      throw bad('sequences out of order');
    }
    prev = p.sequence;
    const isLatest = i === points.length - 1;
    if (isLatest !== (p.undoFile === null)) throw bad('undo files do not match the points');
  });
  return c as CatalogueBody;
}

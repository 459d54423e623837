/**
 * The catalogue of one relationship: epoch, disks and sizes, retained points (oldest first) and, for
 * every point but the latest, its undo list: the undo files that restore it from the next retained
 * point, first file first (docs/design/recovery-points.md section 6.1). Replaced atomically
 * (metadata-file.ts); the store keeps an immutable copy in memory and swaps it after each publish.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { RecoveryPointInfo } from './replica-store.js';

/** One file of an undo list and how many cycles' undo it holds (the compaction plan's weight). */
export interface UndoRef {
  readonly file: string;
  readonly cycles: number;
}

export interface StoredPoint extends RecoveryPointInfo {
  /** Disk sizes at this point; a disk added later is not part of the point. */
  readonly diskSizes: Readonly<Record<string, number>>;
  /**
   * The undo files restoring this point from the next retained one; a byte comes from the first that
   * covers it. Empty for the latest point, never empty for another.
   */
  readonly undo: readonly UndoRef[];
}

export interface CatalogueBody {
  readonly format: 'secondsite-catalogue-2';
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
    format: 'secondsite-catalogue-2',
    relationshipId,
    epoch: 0,
    nextSequence: 1,
    nextFileId: 1,
    disks: [],
    points: [],
  };
}

/** Every undo file the catalogue names. */
export function undoFilesOf(cat: CatalogueBody): Set<string> {
  return new Set(cat.points.flatMap((p) => p.undo.map((u) => u.file)));
}

/**
 * Checks the shape and invariants of a decoded catalogue; METADATA_CORRUPT when broken. A catalogue
 * of the first format (one `undoFile` per point) is returned as lists of one file.
 */
export function checkCatalogue(body: unknown, relationshipId: string, path: string): CatalogueBody {
  const bad = (why: string): SecondsiteError =>
    new SecondsiteError(
      'SECONDSITE_ERR_METADATA_CORRUPT',
      `catalogue ${path} is invalid (${why}); it is not used. Resync the replica from the primary.`,
      { file: path, reason: why },
    );
  const c = body as (Omit<Partial<CatalogueBody>, 'format'> & { format?: string }) | null;
  if (c === null || typeof c !== 'object') throw bad('unknown format');
  if (c.format !== 'secondsite-catalogue-2' && c.format !== 'secondsite-catalogue-1')
    throw bad('unknown format');
  if (c.relationshipId !== relationshipId) throw bad(`belongs to relationship ${String(c.relationshipId)}`);
  if (!Array.isArray(c.points) || !Array.isArray(c.disks)) throw bad('missing lists');
  if (typeof c.epoch !== 'number' || typeof c.nextSequence !== 'number' || typeof c.nextFileId !== 'number') {
    throw bad('missing counters');
  }
  const points = (c.points as unknown[]).map((raw) => {
    const p = raw as StoredPoint & { undoFile?: string | null };
    if (c.format === 'secondsite-catalogue-2') return p;
    const { undoFile, ...rest } = p;
    return { ...rest, undo: typeof undoFile === 'string' ? [{ file: undoFile, cycles: 1 }] : [] };
  });
  let prev = 0;
  const nextSequence = c.nextSequence;
  const seen = new Set<string>();
  points.forEach((p, i) => {
    if (typeof p.sequence !== 'number' || p.sequence <= prev || p.sequence >= nextSequence) {
      throw bad('sequences out of order');
    }
    prev = p.sequence;
    if (!Array.isArray(p.undo)) throw bad('a point has no undo list');
    for (const u of p.undo as ReadonlyArray<UndoRef | null>) {
      if (
        u === null ||
        typeof u !== 'object' ||
        typeof u.file !== 'string' ||
        !Number.isSafeInteger(u.cycles) ||
        u.cycles < 1 ||
        seen.has(u.file)
      ) {
        throw bad('an undo list entry is invalid or named twice');
      }
      seen.add(u.file);
    }
    const isLatest = i === points.length - 1;
    if (isLatest !== (p.undo.length === 0)) throw bad('undo files do not match the points');
  });
  return { ...(c as CatalogueBody), format: 'secondsite-catalogue-2', points };
}

/**
 * The points without `drop` (recovery-points.md section 6.1): a dropped point's undo list joins the
 * list of the kept point before it; the lists of dropped points with no kept point before them are
 * gone (their files are unreferenced). `joined` says, per kept point whose list grew, where the joined
 * files start. The latest point is never dropped (its list is empty and nothing could restore it).
 */
export function dropPoints(
  points: readonly StoredPoint[],
  drop: ReadonlySet<string>,
): { kept: StoredPoint[]; joined: Array<{ pointId: string; from: number }> } {
  const kept: StoredPoint[] = [];
  const joined: Array<{ pointId: string; from: number }> = [];
  points.forEach((p, i) => {
    if (!drop.has(p.pointId)) {
      kept.push(p);
      return;
    }
    if (i === points.length - 1) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INTERNAL',
        `the latest point ${p.pointId} cannot be dropped`,
        {
          pointId: p.pointId,
        },
      );
    }
    const prev = kept[kept.length - 1];
    if (prev === undefined) return;
    if (!joined.some((j) => j.pointId === prev.pointId))
      joined.push({ pointId: prev.pointId, from: prev.undo.length });
    kept[kept.length - 1] = { ...prev, undo: [...prev.undo, ...p.undo] };
  });
  return { kept, joined };
}

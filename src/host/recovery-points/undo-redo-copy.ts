/**
 * The three places where the store moves block data (docs/design/recovery-points.md sections 5-6):
 * applying a cycle's redo to the bases (phase 3), capturing the undo of the ranges it will overwrite
 * (phase 2), and merging adjacent files of an undo list into one (compaction, section 6.1). Each copies in chunks
 * of at most 1 MiB and keeps holes and all-zero data as zero extents, so undo files stay sparse.
 */
import { coalesce } from '../../domain/replication/extent-set.js';
import type { Storage, StorageFile } from '../storage/storage.js';
import {
  ExtentMap,
  gapsOf,
  sliceRedoSource,
  type ByteRange,
  type RedoSource,
  type SourceRef,
} from './extent-map.js';
import { COPY_CHUNK, readFully, UndoWriter, type LoadedUndo } from './undo-file.js';

export type RedoMap = ReadonlyMap<string, ExtentMap<RedoSource>>;
type BaseOf = (diskId: string) => StorageFile;

/**
 * Copies (1 MiB each) of the apply and undo-capture phases in flight at once: reads overlap writes,
 * and small extents do not pay a thread-pool round trip each, one after the other.
 */
const COPIES_IN_FLIGHT = 4;

/**
 * Writes every redo extent into its disk's base (zero extents punch holes; `base` extents, staged in
 * place, are already there), then datasyncs each base. The extents of a redo map never overlap, so
 * their pieces are copied several at a time, in any order.
 */
export async function applyRedo(redoFile: StorageFile, redo: RedoMap, baseOf: BaseOf): Promise<void> {
  for (const [diskId, map] of redo) {
    const base = baseOf(diskId);
    const pieces: Array<() => Promise<void>> = [];
    for (const e of map.entries()) {
      const source = e.value;
      if (source.kind === 'base') continue;
      if (source.kind === 'zero') {
        pieces.push(() => base.punchHole(e.offsetBytes, e.lengthBytes));
        continue;
      }
      for (let done = 0; done < e.lengthBytes; done += COPY_CHUNK) {
        const n = Math.min(COPY_CHUNK, e.lengthBytes - done);
        const from = source.posBytes + done;
        const to = e.offsetBytes + done;
        pieces.push(async () => {
          const buf = Buffer.allocUnsafe(n);
          await readFully(redoFile, buf, 0, n, from);
          await base.write(buf, 0, n, to);
        });
      }
    }
    await runBounded(pieces, COPIES_IN_FLIGHT);
    await base.datasync();
  }
}

/** Runs `tasks` with at most `limit` at a time; after the first failure starts no more, then throws it. */
async function runBounded(tasks: ReadonlyArray<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const lane = async (): Promise<void> => {
    while (failure === null && next < tasks.length) {
      const task = tasks[next++] as () => Promise<void>;
      try {
        await task();
      } catch (e) {
        failure ??= { error: e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, lane));
  if (failure !== null) throw (failure as { error: unknown }).error;
}

/** Writes (and datasyncs) an undo file holding the current base content of every redo extent. */
export async function captureUndo(
  storage: Storage,
  path: string,
  redo: RedoMap,
  baseOf: BaseOf,
): Promise<void> {
  const writer = await UndoWriter.create(storage, path);
  try {
    // Extents never overlap and the undo index is sorted when sealed, so several are captured at once
    // (allocation, read and append overlap); the seal (index, datasync) comes after all of them.
    const tasks: Array<() => Promise<void>> = [];
    for (const [diskId, map] of redo) {
      const base = baseOf(diskId);
      for (const e of map.entries()) {
        tasks.push(async () => {
          for (const a of await base.allocation(e.offsetBytes, e.lengthBytes)) {
            if (!a.data) {
              writer.addZero(diskId, a.offsetBytes, a.lengthBytes);
              continue;
            }
            for (let done = 0; done < a.lengthBytes; done += COPY_CHUNK) {
              const n = Math.min(COPY_CHUNK, a.lengthBytes - done);
              const buf = Buffer.alloc(n);
              await readFully(base, buf, 0, n, a.offsetBytes + done);
              await writer.addData(diskId, a.offsetBytes + done, buf);
            }
          }
        });
      }
    }
    await runBounded(tasks, COPIES_IN_FLIGHT);
    await writer.seal();
  } catch (e) {
    await writer.abort();
    throw e;
  }
}

/** Where a merged undo file takes each piece from: a source file's data, or zeros. */
export interface MergePiece {
  readonly undo: LoadedUndo;
  readonly ref: SourceRef;
}
export type MergePlan = ReadonlyMap<string, ExtentMap<MergePiece | null>>;

/**
 * Plans the merge of adjacent files `sources` of an undo list (first file first): for every byte the
 * first source that covers it wins, which is exactly how a read resolves through them; ranges that
 * `before` (the files ahead of them in the list) cover are left out, as no read takes them from the
 * sources (shadowed, recovery-points.md section 6.1, invariant S). Synchronous: run it under the
 * store's lock, then write the plan without it.
 */
export function planUndoMerge(sources: readonly LoadedUndo[], before: readonly LoadedUndo[]): MergePlan {
  const merged = new Map<string, ExtentMap<MergePiece | null>>();
  const mapOf = (diskId: string): ExtentMap<MergePiece | null> => {
    let m = merged.get(diskId);
    if (m === undefined) {
      m = new ExtentMap<MergePiece | null>((v, d) =>
        v !== null && v.ref.kind === 'data'
          ? { undo: v.undo, ref: { kind: 'data', posBytes: v.ref.posBytes + d } }
          : v,
      );
      merged.set(diskId, m);
    }
    return m;
  };
  for (const undo of before) {
    for (const [diskId, map] of undo.disks) {
      const m = mapOf(diskId);
      for (const e of map.entries()) m.fillGaps(e.offsetBytes, e.lengthBytes, null);
    }
  }
  for (const undo of sources) {
    for (const [diskId, map] of undo.disks) {
      const m = mapOf(diskId);
      for (const e of map.entries()) m.fillGaps(e.offsetBytes, e.lengthBytes, { undo, ref: e.value });
    }
  }
  return merged;
}

/** Writes (and datasyncs) the undo file a merge plan describes. The caller syncs the directory. */
export async function writeMergedUndo(storage: Storage, path: string, plan: MergePlan): Promise<void> {
  const writer = await UndoWriter.create(storage, path);
  try {
    for (const [diskId, map] of plan) {
      for (const e of map.entries()) {
        const piece = e.value;
        if (piece === null) continue;
        if (piece.ref.kind === 'zero') {
          writer.addZero(diskId, e.offsetBytes, e.lengthBytes);
          continue;
        }
        for (let done = 0; done < e.lengthBytes; done += COPY_CHUNK) {
          const n = Math.min(COPY_CHUNK, e.lengthBytes - done);
          const buf = Buffer.alloc(n);
          await readFully(piece.undo.file, buf, 0, n, piece.ref.posBytes + done);
          await writer.addData(diskId, e.offsetBytes + done, buf);
        }
      }
    }
    await writer.seal();
  } catch (e) {
    await writer.abort();
    throw e;
  }
}

/** The parts of [offsetBytes, +lengthBytes) of a disk that any of `files` covers, sorted, coalesced. */
function coveredBy(
  files: readonly LoadedUndo[],
  diskId: string,
  offsetBytes: number,
  lengthBytes: number,
): ByteRange[] {
  return coalesce(
    files.flatMap((f) =>
      (f.disks.get(diskId)?.covered(offsetBytes, lengthBytes) ?? []).map((p) => ({
        offsetBytes: p.offsetBytes,
        lengthBytes: p.lengthBytes,
      })),
    ),
  );
}

/**
 * The data positions (in `undo`'s file) of every range of `undo` that a file of `before` covers: no
 * read takes those bytes from `undo` any more (shadowed), so they may be punched to free the space.
 */
export function shadowedData(
  undo: LoadedUndo,
  before: readonly LoadedUndo[],
): Array<{ posBytes: number; lengthBytes: number }> {
  const out: ByteRange[] = [];
  for (const [diskId, map] of undo.disks) {
    for (const e of map.entries()) {
      const ref = e.value;
      if (ref.kind !== 'data') continue;
      for (const c of coveredBy(before, diskId, e.offsetBytes, e.lengthBytes))
        out.push({ offsetBytes: ref.posBytes + (c.offsetBytes - e.offsetBytes), lengthBytes: c.lengthBytes });
    }
  }
  // pieces adjacent in the file are punched as one range: a block they share is freed only then
  return coalesce(out).map((r) => ({ posBytes: r.offsetBytes, lengthBytes: r.lengthBytes }));
}

/**
 * The parts of `redo`'s extents that no file of `files` covers: what a commit must still capture of a
 * latest point that its retention drops (recovery-points.md section 6.2), `files` being the chain of
 * the kept point before it.
 */
export function uncoveredBy(redo: RedoMap, files: readonly LoadedUndo[]): RedoMap {
  const out = new Map<string, ExtentMap<RedoSource>>();
  for (const [diskId, map] of redo) {
    const rest = new ExtentMap<RedoSource>(sliceRedoSource);
    for (const e of map.entries()) {
      for (const r of gapsOf(e, coveredBy(files, diskId, e.offsetBytes, e.lengthBytes)))
        rest.set(r.offsetBytes, r.lengthBytes, sliceRedoSource(e.value, r.offsetBytes - e.offsetBytes));
    }
    if (rest.size > 0) out.set(diskId, rest);
  }
  return out;
}

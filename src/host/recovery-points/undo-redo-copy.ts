/**
 * The three places where the store moves block data (docs/design/recovery-points.md sections 5-6):
 * applying a cycle's redo to the bases (phase 3), capturing the undo of the ranges it will overwrite
 * (phase 2), and merging the undo files of dropped points into one (retention). Each copies in chunks
 * of at most 1 MiB and keeps holes and all-zero data as zero extents, so undo files stay sparse.
 */
import type { Storage, StorageFile } from '../storage/storage.js';
import { ExtentMap, type RedoSource, type SourceRef } from './extent-map.js';
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

/**
 * Writes (and datasyncs) the merge of `sources`, ordered oldest point first: for every byte the first
 * source that covers it wins, which is exactly how a read of the oldest of those points resolves.
 */
export async function writeMergedUndo(
  storage: Storage,
  path: string,
  sources: readonly LoadedUndo[],
): Promise<void> {
  type Ref = { readonly undo: LoadedUndo; readonly ref: SourceRef };
  const merged = new Map<string, ExtentMap<Ref>>();
  for (const undo of sources) {
    for (const [diskId, map] of undo.disks) {
      let m = merged.get(diskId);
      if (m === undefined) {
        m = new ExtentMap<Ref>((v, d) =>
          v.ref.kind === 'data' ? { undo: v.undo, ref: { kind: 'data', posBytes: v.ref.posBytes + d } } : v,
        );
        merged.set(diskId, m);
      }
      for (const e of map.entries()) m.fillGaps(e.offsetBytes, e.lengthBytes, { undo, ref: e.value });
    }
  }
  const writer = await UndoWriter.create(storage, path);
  try {
    for (const [diskId, map] of merged) {
      for (const e of map.entries()) {
        if (e.value.ref.kind === 'zero') {
          writer.addZero(diskId, e.offsetBytes, e.lengthBytes);
          continue;
        }
        for (let done = 0; done < e.lengthBytes; done += COPY_CHUNK) {
          const n = Math.min(COPY_CHUNK, e.lengthBytes - done);
          const buf = Buffer.alloc(n);
          await readFully(e.value.undo.file, buf, 0, n, e.value.ref.posBytes + done);
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

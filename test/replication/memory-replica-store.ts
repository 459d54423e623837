/**
 * Test-only ReplicaStore in memory (until the recovery-point store's real one lands). Points hold full
 * images (small test disks). Staging keeps the ops of one cycle; `sync()` marks everything staged so
 * far durable; `dropUnsynced()` simulates a replica restart. Counters let tests prove "nothing
 * applied" and "no point".
 */
import type {
  CycleWriter,
  PointDiskReader,
  RecoveryPointInfo,
  ReplicaStore,
  StagedProgress,
} from '../../src/host/recovery-points/replica-store.js';
import { coalesce } from '../../src/domain/replication/extent-set.js';

type Op = { diskId: string; offsetBytes: number; lengthBytes: number; data: Buffer | null };

interface Staging {
  cycleId: string;
  epoch: number;
  ops: Op[];
  durableOps: number;
}

export class MemoryReplicaStore implements ReplicaStore {
  state: 'open' | 'failed' | 'closed' = 'open';
  private epochValue: number;
  private readonly diskSizes = new Map<string, number>();
  private readonly pointList: Array<{ info: RecoveryPointInfo; images: Map<string, Buffer> }> = [];
  private staging: Staging | null = null;
  chunksWritten = 0;
  bytesWritten = 0;
  zeroRanges = 0;
  commits = 0;

  constructor(
    readonly relationshipId: string,
    epoch = 1,
  ) {
    this.epochValue = epoch;
  }

  epoch(): number {
    return this.epochValue;
  }

  setEpoch(epoch: number): Promise<void> {
    this.epochValue = Math.max(this.epochValue, epoch);
    return Promise.resolve();
  }

  disks(): ReadonlyArray<{ diskId: string; sizeBytes: number }> {
    return [...this.diskSizes].map(([diskId, sizeBytes]) => ({ diskId, sizeBytes }));
  }

  ensureDisk(diskId: string, sizeBytes: number): Promise<void> {
    this.diskSizes.set(diskId, sizeBytes);
    return Promise.resolve();
  }

  points(): ReadonlyArray<RecoveryPointInfo> {
    return this.pointList.map((p) => p.info);
  }

  /** The image of a disk at the latest point (zeros if none). */
  latestImage(diskId: string): Buffer {
    const last = this.pointList.at(-1);
    return Buffer.from(last?.images.get(diskId) ?? Buffer.alloc(this.diskSizes.get(diskId) ?? 0));
  }

  stagedCycleId(): string | null {
    return this.staging?.cycleId ?? null;
  }

  /** Simulates a replica restart: staged-but-unsynced ops are lost. */
  dropUnsynced(): void {
    if (this.staging) this.staging.ops.length = this.staging.durableOps;
  }

  beginCycle(cycleId: string, epoch: number): Promise<CycleWriter> {
    if (!this.staging || this.staging.cycleId !== cycleId)
      this.staging = { cycleId, epoch, ops: [], durableOps: 0 };
    const st = this.staging;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const store = this;
    const progressOf = (n: number): StagedProgress => {
      const staged: Record<string, Array<{ offsetBytes: number; lengthBytes: number }>> = {};
      for (const op of st.ops.slice(0, n)) (staged[op.diskId] ??= []).push(op);
      const out: Record<string, ReadonlyArray<{ offsetBytes: number; lengthBytes: number }>> = {};
      for (const [k, v] of Object.entries(staged)) out[k] = coalesce(v);
      return { cycleId, staged: out };
    };
    const live = (): void => {
      if (store.staging !== st) throw new Error('staging was discarded or committed');
    };
    const writer: CycleWriter = {
      cycleId,
      epoch,
      writeChunk(diskId, offsetBytes, data) {
        live();
        store.chunksWritten++;
        store.bytesWritten += data.length;
        st.ops.push({ diskId, offsetBytes, lengthBytes: data.length, data: Buffer.from(data) });
        return Promise.resolve();
      },
      zeroRange(diskId, offsetBytes, lengthBytes) {
        live();
        store.zeroRanges++;
        st.ops.push({ diskId, offsetBytes, lengthBytes, data: null });
        return Promise.resolve();
      },
      sync() {
        live();
        st.durableOps = st.ops.length;
        return Promise.resolve(progressOf(st.durableOps));
      },
      progress() {
        return progressOf(st.durableOps);
      },
      adopted() {
        return {}; // this double never adopts an earlier cycle's staging
      },
      overlayStaged(diskId, offsetBytes, target) {
        const end = offsetBytes + target.length;
        for (const op of st.ops.slice(0, st.durableOps)) {
          if (op.diskId !== diskId) continue;
          const from = Math.max(op.offsetBytes, offsetBytes);
          const to = Math.min(op.offsetBytes + op.lengthBytes, end);
          if (from >= to) continue;
          if (op.data) op.data.copy(target, from - offsetBytes, from - op.offsetBytes, to - op.offsetBytes);
          else target.fill(0, from - offsetBytes, to - offsetBytes);
        }
        return Promise.resolve();
      },
      commit(meta) {
        live();
        const images = new Map<string, Buffer>();
        for (const [diskId, size] of store.diskSizes) {
          const img = Buffer.alloc(size);
          store.latestImage(diskId).copy(img);
          images.set(diskId, img);
        }
        for (const op of st.ops) {
          const img = images.get(op.diskId);
          if (!img) throw new Error(`unknown disk ${op.diskId}`);
          if (op.data) op.data.copy(img, op.offsetBytes);
          else img.fill(0, op.offsetBytes, op.offsetBytes + op.lengthBytes);
        }
        const info: RecoveryPointInfo = {
          pointId: `p${store.pointList.length + 1}`,
          sequence: store.pointList.length + 1,
          epoch,
          cycleId,
          cutWallMs: meta.cutWallMs,
          committedWallMs: Date.now(),
          consistency: meta.consistency,
        };
        store.pointList.push({ info, images });
        store.staging = null;
        store.commits++;
        return Promise.resolve(info);
      },
      discard() {
        if (store.staging === st) store.staging = null;
        return Promise.resolve();
      },
    };
    return Promise.resolve(writer);
  }

  openPointDisk(pointId: string, diskId: string): Promise<PointDiskReader> {
    const p = this.pointList.find((x) => x.info.pointId === pointId);
    const img = p?.images.get(diskId);
    if (!img) return Promise.reject(new Error(`no disk ${diskId} at point ${pointId}`));
    return Promise.resolve({
      sizeBytes: img.length,
      read: (o: number, l: number) => Promise.resolve(Buffer.from(img.subarray(o, o + l))),
      allocation: (o: number, l: number) => Promise.resolve([{ offsetBytes: o, lengthBytes: l, data: true }]),
      close: () => Promise.resolve(),
    });
  }

  applyRetention(): Promise<string[]> {
    return Promise.resolve([]);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

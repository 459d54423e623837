/**
 * The seam between the replication receiver and the recovery-point store (replica host).
 *
 * A relationship's replica holds one image per disk plus the retained recovery points. A cycle is
 * received into staging (durable, idempotent per chunk, resumable), then committed: only after
 * `commit()` returns is the new point visible, and a crash at any moment leaves either the old set of
 * points or the new one, never a partly applied cycle. Failover to any retained point costs metadata,
 * not a copy of the disk (see docs/design/recovery-points.md).
 */
export interface ReplicaStore {
  readonly relationshipId: string;
  /**
   * 'failed' after an I/O failure inside a commit or a catalogue write: the in-memory state can no
   * longer be trusted, so callers must close and reopen the store (opening finishes or rolls back).
   */
  readonly state: 'open' | 'failed' | 'closed';
  /** Current generation; frames from older epochs are rejected by the receiver. */
  epoch(): number;
  /** Raises the epoch (failover fencing). Durable on return. Never lowers it. */
  setEpoch(epoch: number): Promise<void>;
  disks(): ReadonlyArray<{ diskId: string; sizeBytes: number }>;
  /** Adds or resizes a disk of the relationship (before the first cycle that uses it). */
  ensureDisk(diskId: string, sizeBytes: number): Promise<void>;
  /** Retained points, oldest first, only complete ones. */
  points(): ReadonlyArray<RecoveryPointInfo>;
  /**
   * Opens (or reopens, for resume) the staging of a cycle. Reopening the same `cycleId` keeps the
   * chunks already staged. A different `cycleId` discards any other staged cycle, unless
   * `adoptWithin` is given, the staged cycle has the same epoch and every range it staged lies inside
   * `adoptWithin` (per disk id: the new cycle's plan): then its records are adopted (see
   * `CycleWriter.adopted`).
   */
  beginCycle(cycleId: string, epoch: number, options?: BeginCycleOptions): Promise<CycleWriter>;
  /** Read-only view of one disk at a retained point (for NBD export, checker, failover). */
  openPointDisk(pointId: string, diskId: string): Promise<PointDiskReader>;
  /** Drops points beyond retention: the latest always stays, plus one per hour for `retentionHours`. */
  applyRetention(retentionHours: number): Promise<string[]>;
  close(): Promise<void>;
}

export interface BeginCycleOptions {
  /** Per disk id, the ranges an earlier staged cycle must lie in to be adopted (the new plan). */
  readonly adoptWithin?: Readonly<
    Record<string, ReadonlyArray<{ offsetBytes: number; lengthBytes: number }>>
  >;
}

export interface RecoveryPointInfo {
  readonly pointId: string;
  /** Sequence number, strictly increasing per relationship. */
  readonly sequence: number;
  readonly epoch: number;
  readonly cycleId: string;
  /** Wall-clock time of the cut on the primary. */
  readonly cutWallMs: number;
  readonly committedWallMs: number;
  readonly consistency: 'crash-consistent' | 'app-consistent';
}

export interface CycleWriter {
  readonly cycleId: string;
  readonly epoch: number;
  /**
   * Stages data for [offsetBytes, offsetBytes+data.length). Idempotent. Durable once `sync()` returns.
   * `sha256`, when the caller already verified it, is SHA-256(data): the store need not hash again.
   */
  writeChunk(diskId: string, offsetBytes: number, data: Buffer, sha256?: Buffer): Promise<void>;
  /** Stages a zero range (never sent as bytes). Idempotent. */
  zeroRange(diskId: string, offsetBytes: number, lengthBytes: number): Promise<void>;
  /** Makes all staged chunks durable; returns the resume token (what the sender may skip). */
  sync(): Promise<StagedProgress>;
  /** Staged chunks so far, for resume after a cut connection or a restart. */
  progress(): StagedProgress;
  /**
   * Per disk, ranges staged by earlier cycles and adopted by this one: they will be applied at commit
   * unless overwritten, but their content may be stale, so they count as received only once verified.
   */
  adopted(): StagedProgress['staged'];
  /**
   * Overlays the durable staged content (adopted and own records, later records winning) of
   * [offsetBytes, offsetBytes + target.length) onto `target`, leaving unstaged bytes as they are.
   * With `target` holding the latest point's content, the result is what a commit would produce.
   */
  overlayStaged(diskId: string, offsetBytes: number, target: Buffer): Promise<void>;
  /**
   * Atomically turns the staged cycle into a new recovery point. With `retentionHours`, the retention
   * policy runs in the same step, and the undo of a latest point it drops is captured only where older
   * kept points need it (docs/design/recovery-points.md section 6.2).
   */
  commit(meta: {
    cutWallMs: number;
    consistency: RecoveryPointInfo['consistency'];
    retentionHours?: number;
  }): Promise<RecoveryPointInfo>;
  /** Throws the staging away. */
  discard(): Promise<void>;
}

export interface StagedProgress {
  readonly cycleId: string;
  /** Per disk, the byte ranges durably staged (sorted, coalesced). */
  readonly staged: Readonly<Record<string, ReadonlyArray<{ offsetBytes: number; lengthBytes: number }>>>;
}

export interface PointDiskReader {
  readonly sizeBytes: number;
  read(offsetBytes: number, lengthBytes: number): Promise<Buffer>;
  allocation(
    offsetBytes: number,
    lengthBytes: number,
  ): Promise<ReadonlyArray<{ offsetBytes: number; lengthBytes: number; data: boolean }>>;
  close(): Promise<void>;
}

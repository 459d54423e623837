/**
 * The seam between change tracking (primary host) and the replication sender.
 *
 * A replication cycle starts with a *cut*: for all disks of one VM at once, new writes are held, writes
 * already in flight are drained, and each disk's set of changed blocks is frozen together with a
 * copy-on-write view of their content at that instant. Writes are then released; a later write to a
 * frozen block first preserves the block's cut-time content. So the sender reads exactly the state the
 * disks had at the cut (crash-consistent, write-order fidelity across the VM's disks) while the VM
 * keeps running.
 *
 * The frozen set stays persisted (as "shipping") until the replica has committed the point, and
 * `complete()` is called; if the sender dies first, the next cut includes it again (shipping union
 * active), so no change is ever lost between cycles.
 */
export interface CycleSnapshot {
  readonly diskId: string;
  readonly sizeBytes: number;
  /** Change-tracking granularity; every changed extent is aligned to it (the last may end at sizeBytes). */
  readonly trackingBlockBytes: number;
  /**
   * True when change tracking cannot vouch for this cycle (unclean stop, first cycle after enabling):
   * the sender must do a checksum-compared resync of the whole disk instead of trusting `changedExtents`.
   */
  readonly resyncRequired: boolean;
  /** Changed ranges at the cut, sorted and coalesced. */
  changedExtents(): ReadonlyArray<{ offsetBytes: number; lengthBytes: number }>;
  /** Content at the cut. Any range of the disk may be read (for resync), not only changed extents. */
  read(offsetBytes: number, lengthBytes: number): Promise<Buffer>;
  /** Allocation at the cut, for sparse-aware initial replication and resync. */
  allocation(
    offsetBytes: number,
    lengthBytes: number,
  ): Promise<ReadonlyArray<{ offsetBytes: number; lengthBytes: number; data: boolean }>>;
  /** The replica committed the point: forget the frozen set (persistently) and drop the CoW copies. */
  complete(): Promise<void>;
  /** The cycle is abandoned: keep the frozen set for the next cut, drop the CoW copies. */
  abandon(): Promise<void>;
}

/**
 * Change tracking as a block-device filter: every write, trim and zeroing sets the bits of the tracking
 * blocks it touches in the `active` bitmap before it is passed down. A cut (see cycle-cut.ts) freezes
 * `shipping = shipping ∪ active`, clears `active` and hands out a CycleSnapshot; `complete()` clears
 * `shipping`, `abandon()` keeps it for the next cut. Design, phases and failure cases:
 * docs/design/change-tracking.md.
 *
 * Crash safety is by the clean/open marker, not by persisting bits per write: opening writes the state
 * file with OPEN set (durably, before any write is accepted); only a clean close, after flushing the
 * disk, writes it with OPEN cleared and the bitmaps exact. A state file found OPEN (or unreadable, or
 * missing: tracking just enabled) makes the next cycle a checksum-compared resync (`resyncRequired`),
 * persisted as RESYNC_PENDING until a resync cycle completes. The write path therefore costs one bit
 * set and a counter; no fsync, no allocation.
 *
 * Memory: one bit per tracking block per bitmap. At the default 64 KiB that is 2 MiB per TiB of disk for
 * each of `active` and `shipping`, plus 2 x 2 MiB per TiB for the CoW preserver's bitmaps: 8 MiB per TiB.
 */
import { SecondsiteError } from '../../domain/errors.js';
import { KiB } from '../../domain/units.js';
import type { BlockDevice, BlockExtent, WriteFlags, ZeroFlags } from '../block-device/block-device.js';
import { readWholeFile, replaceFileAtomically } from '../disks/atomic-file.js';
import type { Storage, StorageFile } from '../storage/storage.js';
import { CowPreserver } from './cow-preserver.js';
import { DirtyBitmap } from './dirty-bitmap.js';
import { TrackedCycleSnapshot, type SnapshotOwner } from './tracked-snapshot.js';
import {
  blockCountFor,
  decodeTrackingState,
  encodeTrackingState,
  type TrackingState,
} from './tracking-state.js';

export const DEFAULT_TRACKING_BLOCK_BYTES = 64 * KiB;

/** Why the next cycle must be a resync. */
export type ResyncReason =
  /** No state file: tracking was just enabled, nothing is known about what the replica holds. */
  | 'first-enable'
  /** The state file was still marked open: the previous run stopped without closing. */
  | 'unclean-stop'
  /** The state file did not verify (checksum, format). */
  | 'state-unreadable'
  /** A flush of the disk failed (fsyncgate): acknowledged data may not be what is on disk. */
  | 'flush-failed'
  /** An earlier resync cycle was not completed. */
  | 'resync-pending'
  /** An operator asked for a resync or an online verify (digests of every chunk compared). */
  | 'requested';

export interface ChangeTrackingOptions {
  diskId: string;
  /** The state file, beside the disk (DiskStore.paths(diskId).tracking). */
  statePath: string;
  /** The CoW side file (DiskStore.paths(diskId).cow). */
  cowPath: string;
  /** Power of two, at least 4 KiB; default 64 KiB. A different size than the state file's converts it. */
  trackingBlockBytes?: number;
}

export class ChangeTrackingFilter implements BlockDevice, SnapshotOwner {
  readonly sizeBytes: number;
  readonly readOnly = false;
  private readonly blockBytes: number;
  private active: DirtyBitmap;
  private shipping: DirtyBitmap;
  private resyncPending: boolean;
  private resyncReasonValue: ResyncReason | undefined;
  /** Bumped whenever a new reason to resync appears, so completing an older resync does not clear it. */
  private resyncGeneration = 0;
  private generation: number;
  private snapshot: TrackedCycleSnapshot | undefined;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;
  private inflight = 0;
  private drainWaiters: Array<() => void> = [];
  private state: 'open' | 'closing' | 'closed' = 'open';
  private persistChain: Promise<void> = Promise.resolve();
  private readonly onDone = (): void => this.done();
  private readonly onFail = (e: unknown): never => {
    this.done();
    throw e;
  };

  private constructor(
    private readonly storage: Storage,
    private readonly inner: BlockDevice,
    private readonly cowFile: StorageFile,
    private readonly preserver: CowPreserver,
    private readonly options: ChangeTrackingOptions,
    blockBytes: number,
    loaded: {
      active: DirtyBitmap;
      shipping: DirtyBitmap;
      resyncReason: ResyncReason | undefined;
      generation: number;
    },
  ) {
    this.sizeBytes = inner.sizeBytes;
    this.blockBytes = blockBytes;
    this.active = loaded.active;
    this.shipping = loaded.shipping;
    this.resyncReasonValue = loaded.resyncReason;
    this.resyncPending = loaded.resyncReason !== undefined;
    this.generation = loaded.generation;
  }

  /**
   * Starts tracking `inner` (which the filter then owns and closes). Loads the state file, decides whether
   * the next cycle is a resync, and durably marks the state OPEN before returning, so no write can land
   * before an unclean stop would be detected.
   */
  static async open(
    storage: Storage,
    inner: BlockDevice,
    options: ChangeTrackingOptions,
  ): Promise<ChangeTrackingFilter> {
    const blockBytes = options.trackingBlockBytes ?? DEFAULT_TRACKING_BLOCK_BYTES;
    if (!Number.isInteger(blockBytes) || blockBytes < 4 * KiB || (blockBytes & (blockBytes - 1)) !== 0) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `the tracking block size must be a power of two of at least 4 KiB, got ${blockBytes}`,
        { trackingBlockBytes: blockBytes },
      );
    }
    if (inner.readOnly) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `change tracking needs disk ${options.diskId} open read-write`,
        { diskId: options.diskId },
      );
    }
    const loaded = load(await readWholeFile(storage, options.statePath), inner.sizeBytes, blockBytes);
    const cowFile = await storage.open(options.cowPath, 'create');
    try {
      await cowFile.truncate(0);
      await cowFile.truncate(inner.sizeBytes);
      const preserver = new CowPreserver(inner, cowFile, blockBytes, inner.sizeBytes);
      const filter = new ChangeTrackingFilter(
        storage,
        inner,
        cowFile,
        preserver,
        options,
        blockBytes,
        loaded,
      );
      await filter.persist(true);
      return filter;
    } catch (e) {
      await cowFile.close();
      throw e;
    }
  }

  get diskId(): string {
    return this.options.diskId;
  }

  get trackingBlockBytes(): number {
    return this.blockBytes;
  }

  /** Why the next cycle will be a resync, or undefined if it will ship only changed blocks. */
  get resyncReason(): ResyncReason | undefined {
    return this.resyncPending ? this.resyncReasonValue : undefined;
  }

  /** Counts for metrics and tests. */
  stats(): { activeBlocks: number; shippingBlocks: number; preservedBlocks: number; snapshotLive: boolean } {
    return {
      activeBlocks: this.active.count(),
      shippingBlocks: this.shipping.count(),
      preservedBlocks: this.preserver.preservedBlocks(),
      snapshotLive: this.snapshot !== undefined,
    };
  }

  read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    return this.inner.read(offsetBytes, lengthBytes);
  }

  extents(offsetBytes: number, lengthBytes: number): Promise<BlockExtent[]> {
    return this.inner.extents(offsetBytes, lengthBytes);
  }

  write(offsetBytes: number, data: Buffer, flags: WriteFlags): Promise<void> {
    if (this.gate === undefined && this.snapshot === undefined && this.state === 'open') {
      this.mark(offsetBytes, data.length);
      this.inflight++;
      let p: Promise<void>;
      try {
        p = this.inner.write(offsetBytes, data, flags).then(this.onDone, this.onFail);
      } catch (e) {
        p = Promise.reject(e as Error).then(this.onDone, this.onFail); // an inner that throws synchronously
      }
      return flags.fua ? this.watchSync(p) : p;
    }
    const p = this.mutateSlow(offsetBytes, data.length, () => this.inner.write(offsetBytes, data, flags));
    return flags.fua ? this.watchSync(p) : p;
  }

  trim(offsetBytes: number, lengthBytes: number, flags: WriteFlags): Promise<void> {
    const p = this.mutateSlow(offsetBytes, lengthBytes, () =>
      this.inner.trim(offsetBytes, lengthBytes, flags),
    );
    return flags.fua ? this.watchSync(p) : p;
  }

  writeZeroes(offsetBytes: number, lengthBytes: number, flags: ZeroFlags): Promise<void> {
    const p = this.mutateSlow(offsetBytes, lengthBytes, () =>
      this.inner.writeZeroes(offsetBytes, lengthBytes, flags),
    );
    return flags.fua ? this.watchSync(p) : p;
  }

  flush(): Promise<void> {
    return this.watchSync(this.inner.flush());
  }

  /**
   * Stops tracking: abandons a live snapshot, waits for writes in flight, flushes the disk, then writes
   * the state with the exact bitmaps and OPEN cleared, and closes the disk. If the flush fails the state
   * stays OPEN, so the next start resyncs.
   */
  async close(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'closing';
    try {
      if (this.snapshot !== undefined) await this.snapshot.abandon();
      while (this.gate !== undefined) await this.gate;
      await this.drain();
      await this.inner.flush();
      await this.persist(false);
    } finally {
      this.state = 'closed';
      await this.cowFile.close();
      await this.storage.unlink(this.options.cowPath).catch(() => undefined);
      await this.inner.close();
    }
  }

  // ---- used by cutCycle (cycle-cut.ts) ----

  /** Throws unless a cut may start now. */
  assertCuttable(): void {
    if (this.state !== 'open') {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `disk ${this.diskId} is not being tracked (closed)`,
        {
          diskId: this.diskId,
        },
      );
    }
    if (this.snapshot !== undefined || this.gate !== undefined) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `disk ${this.diskId} already has a cycle snapshot; complete or abandon it before cutting again`,
        { diskId: this.diskId },
      );
    }
  }

  /** New writes wait from now until release(). */
  hold(): void {
    this.gate ??= new Promise<void>((resolve) => {
      this.openGate = resolve;
    });
  }

  /** Resolves when no write is in flight. */
  drain(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }

  /** The cut itself (writes held and drained): shipping |= active, active cleared, snapshot live. */
  freeze(): TrackedCycleSnapshot {
    if (this.resyncPending) this.shipping.setAll();
    this.shipping.orWith(this.active);
    this.active.clearAll();
    const snapshot = new TrackedCycleSnapshot(
      this,
      this.preserver,
      this.diskId,
      this.sizeBytes,
      this.blockBytes,
      this.resyncPending,
      this.resyncGeneration,
    );
    this.snapshot = snapshot;
    return snapshot;
  }

  /** Lets held writes go. */
  release(): void {
    const open = this.openGate;
    this.gate = undefined;
    this.openGate = undefined;
    open?.();
  }

  /** The frozen set of the live snapshot (stable until it ends). */
  frozenSet(): DirtyBitmap {
    return this.shipping;
  }

  /** Writes the state file (OPEN set while tracking); serialized, captures the bitmaps synchronously. */
  persist(open = this.state !== 'closed'): Promise<void> {
    this.generation++;
    const state: TrackingState = {
      open,
      resyncPending: this.resyncPending,
      generation: this.generation,
      sizeBytes: this.sizeBytes,
      trackingBlockBytes: this.blockBytes,
      shipping: this.shipping,
      active: this.active,
    };
    const bytes = encodeTrackingState(state);
    const run = this.persistChain.then(() =>
      replaceFileAtomically(this.storage, this.options.statePath, bytes),
    );
    this.persistChain = run.catch(() => undefined);
    return run;
  }

  async endSnapshot(snapshot: TrackedCycleSnapshot, outcome: 'complete' | 'abandon'): Promise<void> {
    if (this.snapshot !== snapshot) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INTERNAL',
        `disk ${this.diskId}: ending a snapshot that is not live`,
      );
    }
    this.snapshot = undefined;
    await this.preserver.reset();
    if (outcome === 'complete') {
      this.shipping.clearAll();
      if (snapshot.resyncRequired && snapshot.resyncGeneration === this.resyncGeneration) {
        this.resyncPending = false;
        this.resyncReasonValue = undefined;
      }
      if (this.state !== 'closed') await this.persist();
    }
  }

  // ---- internals ----

  private mark(offsetBytes: number, lengthBytes: number): void {
    if (lengthBytes <= 0) return;
    const first = Math.floor(offsetBytes / this.blockBytes);
    const last = Math.floor((offsetBytes + lengthBytes - 1) / this.blockBytes);
    if (first === last) this.active.set(first);
    else this.active.setRange(first, last + 1);
  }

  private async mutateSlow(offsetBytes: number, lengthBytes: number, op: () => Promise<void>): Promise<void> {
    while (this.gate !== undefined) await this.gate;
    if (this.state !== 'open') {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `disk ${this.diskId} is closing; the write was not applied`,
        { diskId: this.diskId },
      );
    }
    this.mark(offsetBytes, lengthBytes);
    this.inflight++;
    try {
      const preserving =
        this.snapshot === undefined ? undefined : this.preserver.preserve(offsetBytes, lengthBytes);
      if (preserving !== undefined) await preserving;
      await op();
    } finally {
      this.done();
    }
  }

  private done(): void {
    this.inflight--;
    if (this.inflight === 0 && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  /**
   * Makes the next cycle a resync: every chunk's digest is compared with the replica's and only the
   * differing chunks are sent (manual resync, online verify). Durable before it returns.
   */
  async requireResync(): Promise<void> {
    this.resyncPending = true;
    this.resyncReasonValue = 'requested';
    this.resyncGeneration++;
    await this.persist();
  }

  /** A failed flush or FUA write may mean acknowledged data is not on disk: require a resync. */
  private watchSync(p: Promise<void>): Promise<void> {
    return p.catch((e: unknown) => {
      if (!this.resyncPending || this.resyncReasonValue !== 'flush-failed') {
        this.resyncPending = true;
        this.resyncReasonValue = 'flush-failed';
        this.resyncGeneration++;
        if (this.state === 'open') this.persist().catch(() => undefined);
      }
      throw e;
    });
  }
}

type Loaded = {
  active: DirtyBitmap;
  shipping: DirtyBitmap;
  resyncReason: ResyncReason | undefined;
  generation: number;
};

/** Decides the starting bitmaps and resync state from the state file's bytes (undefined if missing). */
function load(bytes: Buffer | undefined, sizeBytes: number, blockBytes: number): Loaded {
  const blocks = blockCountFor(sizeBytes, blockBytes);
  const allDirty = (resyncReason: ResyncReason, generation: number): Loaded => {
    // DRBD's rule: what is unknown is changed.
    const active = new DirtyBitmap(blocks);
    active.setAll();
    return { active, shipping: new DirtyBitmap(blocks), resyncReason, generation };
  };
  if (bytes === undefined) return allDirty('first-enable', 0);
  const decoded = decodeTrackingState(bytes);
  if (typeof decoded === 'string') return allDirty('state-unreadable', 0);
  if (decoded.open) return allDirty('unclean-stop', decoded.generation);
  const resyncReason: ResyncReason | undefined = decoded.resyncPending ? 'resync-pending' : undefined;
  if (decoded.sizeBytes === sizeBytes && decoded.trackingBlockBytes === blockBytes) {
    return {
      active: decoded.active,
      shipping: decoded.shipping,
      resyncReason,
      generation: decoded.generation,
    };
  }
  // The disk was resized or the granularity changed while tracking was stopped: convert conservatively.
  const convert = (old: DirtyBitmap): DirtyBitmap => {
    const out = new DirtyBitmap(blocks);
    for (const [a, b] of old.runs()) {
      out.setRange(
        Math.floor((a * decoded.trackingBlockBytes) / blockBytes),
        Math.ceil((b * decoded.trackingBlockBytes) / blockBytes),
      );
    }
    return out;
  };
  const active = convert(decoded.active);
  const shipping = convert(decoded.shipping);
  // Everything from the old end (or the new, if it shrank) to the new end, its partial block included,
  // is changed: shrinking discarded data there and growing added zeros the replica does not have yet.
  active.setRange(Math.floor(Math.min(decoded.sizeBytes, sizeBytes) / blockBytes), blocks);
  return { active, shipping, resyncReason, generation: decoded.generation };
}

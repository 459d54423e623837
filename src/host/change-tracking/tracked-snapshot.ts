/**
 * The `CycleSnapshot` a change-tracking filter hands out at a cut: the frozen changed set (computed
 * once, right after writes are released), reads and allocation at the cut through the filter's
 * copy-on-write preserver, and complete/abandon, which the owning filter carries out. Once completed or
 * abandoned, the snapshot refuses further use.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { CowPreserver } from './cow-preserver.js';
import type { CycleSnapshot } from './cycle-snapshot.js';
import type { DirtyBitmap } from './dirty-bitmap.js';

/** What the snapshot needs from the filter that made it. */
export interface SnapshotOwner {
  endSnapshot(snapshot: TrackedCycleSnapshot, outcome: 'complete' | 'abandon'): Promise<void>;
}

export class TrackedCycleSnapshot implements CycleSnapshot {
  private extents: ReadonlyArray<{ offsetBytes: number; lengthBytes: number }> | undefined;
  private state: 'live' | 'ending' | 'ended' = 'live';

  constructor(
    private readonly owner: SnapshotOwner,
    private readonly preserver: CowPreserver,
    readonly diskId: string,
    readonly sizeBytes: number,
    readonly trackingBlockBytes: number,
    readonly resyncRequired: boolean,
    /** Bumped whenever the filter learns of a new reason to resync; see ChangeTrackingFilter. */
    readonly resyncGeneration: number,
  ) {}

  /** Computes the changed extents from the frozen set; called by cutCycle once writes are released. */
  freezeExtents(shipping: DirtyBitmap): void {
    const out: Array<{ offsetBytes: number; lengthBytes: number }> = [];
    for (const [a, b] of shipping.runs()) {
      const offsetBytes = a * this.trackingBlockBytes;
      out.push({
        offsetBytes,
        lengthBytes: Math.min(b * this.trackingBlockBytes, this.sizeBytes) - offsetBytes,
      });
    }
    this.extents = out;
  }

  get live(): boolean {
    return this.state === 'live';
  }

  changedExtents(): ReadonlyArray<{ offsetBytes: number; lengthBytes: number }> {
    if (this.extents === undefined) throw this.misuse('its changed extents are not frozen yet');
    return this.extents;
  }

  read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    if (this.state !== 'live') return Promise.reject(this.misuse('it was completed or abandoned'));
    return this.preserver.read(offsetBytes, lengthBytes);
  }

  allocation(
    offsetBytes: number,
    lengthBytes: number,
  ): Promise<ReadonlyArray<{ offsetBytes: number; lengthBytes: number; data: boolean }>> {
    if (this.state !== 'live') return Promise.reject(this.misuse('it was completed or abandoned'));
    return this.preserver.allocation(offsetBytes, lengthBytes);
  }

  complete(): Promise<void> {
    return this.end('complete');
  }

  abandon(): Promise<void> {
    return this.end('abandon');
  }

  private async end(outcome: 'complete' | 'abandon'): Promise<void> {
    if (this.state !== 'live') throw this.misuse('it was already completed or abandoned');
    this.state = 'ending';
    try {
      await this.owner.endSnapshot(this, outcome);
    } finally {
      this.state = 'ended';
    }
  }

  private misuse(why: string): SecondsiteError {
    return new SecondsiteError(
      'SECONDSITE_ERR_INVALID_STATE',
      `the cycle snapshot of disk ${this.diskId} cannot be used: ${why}; cut a new cycle`,
      { diskId: this.diskId },
    );
  }
}

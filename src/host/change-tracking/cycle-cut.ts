/**
 * The cut: one instant for all disks of a VM (crash-consistent, write-order fidelity across disks).
 *
 *   1. hold     every filter makes new writes wait (they queue on a gate, nothing is rejected);
 *   2. drain    wait until the writes already in flight on every disk have completed;
 *   3. freeze   per disk: shipping = shipping ∪ active, active cleared, CoW preservation on;
 *   4. release  held writes go on (each first preserves the cut content of the blocks it touches);
 *   5. persist  the state files record the frozen sets (while tracking runs they are advisory: a crash
 *               resyncs anyway; they matter across a clean close and reopen). This happens after the
 *               release so the VM's writes wait only for steps 2-3, never for an fsync.
 *
 * If A completed before B was issued, then either B was in flight at the hold (so A had completed and
 * is in the cut) or B is held (and is not): never only B. Across disks too, since all are held first.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { ChangeTrackingFilter } from './change-tracking.filter.js';
import type { CycleSnapshot } from './cycle-snapshot.js';
import type { TrackedCycleSnapshot } from './tracked-snapshot.js';

/** Cuts a cycle across `filters` (all disks of one VM); returns one snapshot per filter, in order. */
export async function cutCycle(filters: readonly ChangeTrackingFilter[]): Promise<CycleSnapshot[]> {
  if (new Set(filters.map((f) => f.diskId)).size !== filters.length) {
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'a cut names the same disk twice', {
      diskIds: filters.map((f) => f.diskId),
    });
  }
  for (const f of filters) f.assertCuttable();
  const snapshots: TrackedCycleSnapshot[] = [];
  for (const f of filters) f.hold();
  try {
    await Promise.all(filters.map((f) => f.drain()));
    for (const f of filters) snapshots.push(f.freeze());
  } finally {
    for (const f of filters) f.release();
  }
  filters.forEach((f, i) => snapshots[i]?.freezeExtents(f.frozenSet()));
  try {
    await Promise.all(filters.map((f) => f.persist()));
  } catch (e) {
    await Promise.allSettled(snapshots.map((s) => s.abandon()));
    throw e;
  }
  return snapshots;
}

/**
 * The primary side's protection state of a relationship, derived from what the host agent persists
 * (its relationship definition) and observes (a resync held back by the policy). The agent asks the
 * protection machine with this state before every operation (docs/design/failover.md section 2).
 */
import type { ProtectionState } from './protection.machine.js';

/** What the primary persists about a relationship: 'enabled' covers the three running states. */
export type PersistedRelationshipState = 'enabled' | 'paused' | 'fenced' | 'prepared';

export interface PrimaryFacts {
  readonly state: PersistedRelationshipState;
  /** Set when the first cycle committed a point at the replica. */
  readonly initialDoneWallMs?: number | undefined;
  /** Scheduled initial replication: no cycle before this instant. */
  readonly startAtWallMs?: number | undefined;
  /** A resync change tracking needs is held back by the policy (manual, or outside its window). */
  readonly resyncHeldBack: boolean;
}

export function primaryProtectionState(f: PrimaryFacts, nowWallMs: number): ProtectionState {
  switch (f.state) {
    case 'paused':
      return 'paused';
    case 'fenced':
      return 'failed-over-away';
    case 'prepared':
      return 'prepared-for-failover';
    case 'enabled':
      if (f.initialDoneWallMs === undefined) {
        return f.startAtWallMs !== undefined && f.startAtWallMs > nowWallMs
          ? 'ready-for-initial-replication'
          : 'initial-replication';
      }
      return f.resyncHeldBack ? 'resync-required' : 'replicating';
  }
}

/**
 * The counters and facts a replication runner keeps per relationship; the report and the health are
 * derived from them (replication-report.ts, relationship-health.ts). Pure data.
 */
import type { RetryClass } from '../errors.js';
import type { SenderState } from './sender-state.machine.js';

export type { SenderState } from './sender-state.machine.js';

export interface LastPoint {
  pointId: string;
  sequence: number;
  cutWallMs: number;
  committedWallMs: number;
}

export interface LastError {
  code: string;
  message: string;
  retry: RetryClass;
  atWallMs: number;
}

/** Counters and facts the runner keeps; everything in the report is derived from these and `now`. */
export interface RelationshipStats {
  relationshipId: string;
  state: SenderState;
  /** Copy frequency in seconds; 0 = continuous. */
  copyFrequencySeconds: number;
  lastPoint: LastPoint | null;
  lastSuccessWallMs: number | null;
  wireBytesSent: number;
  logicalBytesSent: number;
  zeroBytes: number;
  resentBytes: number;
  lastCycleLogicalBytes: number;
  lastCycleDurationMs: number;
  cyclesOk: number;
  cyclesFailed: number;
  cyclesMissed: number;
  /** Outcomes of recent scheduled cycles, newest last, at most 20: ok, failed or missed. */
  recentOutcomes: Array<'ok' | 'failed' | 'missed'>;
  /** Consecutive attempts that ended in a permanent error. */
  consecutivePermanentErrors: number;
  resyncRequired: boolean;
  currentCycle: { cycleId: string; plannedBytes: number; doneBytes: number } | null;
  lastError: LastError | null;
}

export function newRelationshipStats(
  relationshipId: string,
  copyFrequencySeconds: number,
): RelationshipStats {
  return {
    relationshipId,
    state: 'idle',
    copyFrequencySeconds,
    lastPoint: null,
    lastSuccessWallMs: null,
    wireBytesSent: 0,
    logicalBytesSent: 0,
    zeroBytes: 0,
    resentBytes: 0,
    lastCycleLogicalBytes: 0,
    lastCycleDurationMs: 0,
    cyclesOk: 0,
    cyclesFailed: 0,
    cyclesMissed: 0,
    recentOutcomes: [],
    consecutivePermanentErrors: 0,
    resyncRequired: false,
    currentCycle: null,
    lastError: null,
  };
}

/** Records the outcome of a scheduled cycle (keeps the last 20). */
export function recordOutcome(stats: RelationshipStats, outcome: 'ok' | 'failed' | 'missed'): void {
  stats.recentOutcomes.push(outcome);
  if (stats.recentOutcomes.length > 20) stats.recentOutcomes.shift();
  if (outcome === 'ok') stats.cyclesOk++;
  else if (outcome === 'failed') stats.cyclesFailed++;
  else stats.cyclesMissed++;
}

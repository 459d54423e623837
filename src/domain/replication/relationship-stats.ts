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
  /** Sums and maxima over the successful cycles since the agent started (for `measure`). */
  measured: CycleMeasures;
}

export interface CycleMeasures {
  cycles: number;
  logicalBytesSum: number;
  logicalBytesMax: number;
  /** Cycle duration: cut to point committed. */
  durationMsSum: number;
  durationMsMax: number;
}

/** Adds one successful cycle to the measures. */
export function recordCycle(stats: RelationshipStats, logicalBytes: number, durationMs: number): void {
  const m = stats.measured;
  m.cycles++;
  m.logicalBytesSum += logicalBytes;
  m.logicalBytesMax = Math.max(m.logicalBytesMax, logicalBytes);
  m.durationMsSum += durationMs;
  m.durationMsMax = Math.max(m.durationMsMax, durationMs);
}

/** `Measure-VMReplication`'s statistics: what replication of one VM has been doing. */
export interface ReplicationMeasure {
  relationshipId: string;
  successfulCycles: number;
  failedCycles: number;
  missedCycles: number;
  /** Errors in a row that were permanent (0 when the last attempt worked). */
  consecutivePermanentErrors: number;
  averageSizeBytes: number;
  maxSizeBytes: number;
  averageLatencyMs: number;
  maxLatencyMs: number;
  /** Changed bytes tracked on the primary and not yet in a recovery point. */
  pendingBytes: number;
  lastError: LastError | null;
}

export function measureReplication(stats: RelationshipStats, pendingBytes: number): ReplicationMeasure {
  const m = stats.measured;
  return {
    relationshipId: stats.relationshipId,
    successfulCycles: stats.cyclesOk,
    failedCycles: stats.cyclesFailed,
    missedCycles: stats.cyclesMissed,
    consecutivePermanentErrors: stats.consecutivePermanentErrors,
    averageSizeBytes: m.cycles === 0 ? 0 : Math.round(m.logicalBytesSum / m.cycles),
    maxSizeBytes: m.logicalBytesMax,
    averageLatencyMs: m.cycles === 0 ? 0 : Math.round(m.durationMsSum / m.cycles),
    maxLatencyMs: m.durationMsMax,
    pendingBytes,
    lastError: stats.lastError,
  };
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
    measured: { cycles: 0, logicalBytesSum: 0, logicalBytesMax: 0, durationMsSum: 0, durationMsMax: 0 },
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

/**
 * The one JSON report of a replication relationship (zrepl-style): what the sender (or receiver) is
 * doing, the last committed point, lag, bytes, cycle counts, the last error and the health with its
 * reasons. Built from `RelationshipStats` by `buildReport`; pure.
 */
import type { LastError, LastPoint, RelationshipStats, SenderState } from './relationship-stats.js';
import { assessHealth } from './relationship-health.js';
import type { HealthAssessment } from './relationship-health.js';

export interface ReplicationReport {
  relationshipId: string;
  state: SenderState;
  lastPoint: LastPoint | null;
  /** now - cut time of the last committed point; null before the first point. */
  lagMs: number | null;
  bytes: { wireSent: number; logicalSent: number; zero: number; resent: number };
  /** Logical bytes per second of the last completed cycle. */
  throughputBytesPerSec: number;
  cycles: { ok: number; failed: number; missed: number };
  currentCycle: RelationshipStats['currentCycle'];
  lastError: LastError | null;
  health: HealthAssessment;
}

export function buildReport(stats: RelationshipStats, nowWallMs: number): ReplicationReport {
  return {
    relationshipId: stats.relationshipId,
    state: stats.state,
    lastPoint: stats.lastPoint,
    lagMs: stats.lastPoint ? Math.max(0, nowWallMs - stats.lastPoint.cutWallMs) : null,
    bytes: {
      wireSent: stats.wireBytesSent,
      logicalSent: stats.logicalBytesSent,
      zero: stats.zeroBytes,
      resent: stats.resentBytes,
    },
    throughputBytesPerSec:
      stats.lastCycleDurationMs > 0
        ? Math.round((stats.lastCycleLogicalBytes * 1000) / stats.lastCycleDurationMs)
        : 0,
    cycles: { ok: stats.cyclesOk, failed: stats.cyclesFailed, missed: stats.cyclesMissed },
    currentCycle: stats.currentCycle,
    lastError: stats.lastError,
    health: assessHealth(stats, nowWallMs),
  };
}

/**
 * Health of a replication relationship: Normal / Warning / Critical with the reasons, adapted to the
 * copy frequency (continuous mode counts as 30 s). Pure; thresholds documented in
 * docs/design/replication.md:
 *   Critical: resync required; 3+ consecutive permanent errors; lag > max(1 h, 12 intervals).
 *   Warning: > 20 % of the last 20 scheduled cycles missed or failed (at least 5 recorded); last success
 *            older than max(1 h, 6 intervals); lag > 3 intervals; no point yet after 6 intervals of trying.
 */
import type { RelationshipStats } from './relationship-stats.js';

export type HealthLevel = 'Normal' | 'Warning' | 'Critical';

export interface HealthAssessment {
  level: HealthLevel;
  reasons: string[];
}

const HOUR_MS = 3_600_000;

export function assessHealth(
  s: Pick<
    RelationshipStats,
    | 'copyFrequencySeconds'
    | 'lastPoint'
    | 'lastSuccessWallMs'
    | 'recentOutcomes'
    | 'consecutivePermanentErrors'
    | 'resyncRequired'
    | 'lastError'
  >,
  nowWallMs: number,
): HealthAssessment {
  const intervalMs = (s.copyFrequencySeconds > 0 ? s.copyFrequencySeconds : 30) * 1000;
  const critical: string[] = [];
  const warning: string[] = [];
  if (s.resyncRequired) critical.push('resync required: change tracking cannot vouch for the replica');
  if (s.consecutivePermanentErrors >= 3) {
    critical.push(
      `${s.consecutivePermanentErrors} consecutive permanent errors (last: ${s.lastError?.code ?? 'unknown'}); a person must act`,
    );
  }
  const lagMs = s.lastPoint ? nowWallMs - s.lastPoint.cutWallMs : null;
  if (lagMs !== null && lagMs > Math.max(HOUR_MS, 12 * intervalMs)) {
    critical.push(
      `lag ${Math.round(lagMs / 1000)} s exceeds ${Math.round(Math.max(HOUR_MS, 12 * intervalMs) / 1000)} s`,
    );
  } else if (lagMs !== null && lagMs > 3 * intervalMs) {
    warning.push(
      `lag ${Math.round(lagMs / 1000)} s exceeds 3 copy intervals (${Math.round((3 * intervalMs) / 1000)} s)`,
    );
  }
  const recent = s.recentOutcomes;
  const bad = recent.filter((o) => o !== 'ok').length;
  if (recent.length >= 5 && bad / recent.length > 0.2) {
    warning.push(`${bad} of the last ${recent.length} cycles missed or failed`);
  }
  const staleMs = Math.max(HOUR_MS, 6 * intervalMs);
  if (s.lastSuccessWallMs !== null && nowWallMs - s.lastSuccessWallMs > staleMs) {
    warning.push(`last successful cycle ${Math.round((nowWallMs - s.lastSuccessWallMs) / 1000)} s ago`);
  }
  if (critical.length > 0) return { level: 'Critical', reasons: [...critical, ...warning] };
  if (warning.length > 0) return { level: 'Warning', reasons: warning };
  return { level: 'Normal', reasons: [] };
}

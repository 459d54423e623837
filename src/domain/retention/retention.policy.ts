/**
 * Recovery-point retention, as a pure function (no clock).
 *
 * Rule: the latest point is always kept. Within the `retentionHours` before the latest point's cut (the
 * window is measured on the primary's clock, the clock of every cut time, never against the replica's:
 * a skew between the sites moves nothing, and while no new point arrives nothing leaves the window),
 * for every clock-hour bucket
 * (`floor(cutWallMs / 1 h)`, absolute, so a point kept once stays kept as time moves on) the newest
 * point is kept, and so is the newest app-consistent point of that bucket (an app-consistent point is
 * never lost to a newer crash-consistent one of the same hour). Pinned points (open views) are kept.
 * Everything else is dropped. Each decision carries its reason.
 */
import { SecondsiteError } from '../errors.js';

export const HOUR_MS = 3_600_000;
/** Largest accepted retention window: one leap year of hourly points. */
export const MAX_RETENTION_HOURS = 24 * 366;

export interface RetentionPoint {
  readonly pointId: string;
  readonly sequence: number;
  readonly cutWallMs: number;
  readonly consistency: 'crash-consistent' | 'app-consistent';
}

export type KeepReason = 'latest' | 'hourly' | 'app-consistent-hourly' | 'pinned';

export type RetentionDecision =
  | { readonly pointId: string; readonly keep: true; readonly reasons: readonly KeepReason[] }
  | {
      readonly pointId: string;
      readonly keep: false;
      readonly reason: 'outside-window' | 'superseded-in-hour';
    };

export interface RetentionInput {
  readonly points: readonly RetentionPoint[];
  readonly retentionHours: number;
  /** Points that must stay (open views); unknown ids are ignored. */
  readonly pinnedPointIds?: ReadonlySet<string>;
}

/** Validates a retention window in hours; throws SECONDSITE_ERR_INVALID_ARGUMENT when out of range. */
export function checkRetentionHours(retentionHours: number): void {
  if (!Number.isInteger(retentionHours) || retentionHours < 0 || retentionHours > MAX_RETENTION_HOURS) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `retention of ${retentionHours} hours is not allowed; use a whole number of hours from 0 to ${MAX_RETENTION_HOURS}`,
      { retentionHours, maxRetentionHours: MAX_RETENTION_HOURS },
    );
  }
}

/** One decision per input point, in input order. The point with the highest sequence is the latest. */
export function planRetention(input: RetentionInput): RetentionDecision[] {
  checkRetentionHours(input.retentionHours);
  const { points } = input;
  if (points.length === 0) return [];
  const pinned = input.pinnedPointIds ?? new Set<string>();

  let latest = points[0] as RetentionPoint;
  for (const p of points) if (p.sequence > latest.sequence) latest = p;
  const windowStartMs = latest.cutWallMs - input.retentionHours * HOUR_MS;

  // Newest (highest sequence) per hour bucket, overall and among app-consistent points.
  const newestInBucket = new Map<number, RetentionPoint>();
  const newestAppInBucket = new Map<number, RetentionPoint>();
  for (const p of points) {
    if (p.cutWallMs <= windowStartMs) continue;
    const bucket = Math.floor(p.cutWallMs / HOUR_MS);
    const cur = newestInBucket.get(bucket);
    if (cur === undefined || p.sequence > cur.sequence) newestInBucket.set(bucket, p);
    if (p.consistency === 'app-consistent') {
      const curApp = newestAppInBucket.get(bucket);
      if (curApp === undefined || p.sequence > curApp.sequence) newestAppInBucket.set(bucket, p);
    }
  }

  return points.map((p): RetentionDecision => {
    const reasons: KeepReason[] = [];
    if (p === latest) reasons.push('latest');
    const inWindow = p.cutWallMs > windowStartMs;
    const bucket = Math.floor(p.cutWallMs / HOUR_MS);
    if (inWindow && newestInBucket.get(bucket) === p) reasons.push('hourly');
    if (inWindow && newestAppInBucket.get(bucket) === p && !reasons.includes('hourly')) {
      reasons.push('app-consistent-hourly');
    }
    if (pinned.has(p.pointId)) reasons.push('pinned');
    if (reasons.length > 0) return { pointId: p.pointId, keep: true, reasons };
    return { pointId: p.pointId, keep: false, reason: inWindow ? 'superseded-in-hour' : 'outside-window' };
  });
}

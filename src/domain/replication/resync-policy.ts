/**
 * When a resync that change tracking asks for may run (docs/design/failover.md section 8.1).
 *
 * After an unclean stop, an unreadable tracking state or a failed flush, change tracking can no longer
 * say what changed, so the next cycle must compare the digest of every chunk with the replica (read
 * all of every disk on both sides). Like Hyper-V Replica, the policy says when that costly cycle runs:
 *
 *   automatic  at once (the default)
 *   manual     only after an operator asks (`secondsite host replication resync`)
 *   window     at once inside a daily UTC time window (e.g. 22:00-06:00, may wrap midnight), else at
 *              the first cycle inside the window; an operator's resync runs at once
 *
 * Until then the relationship is in `resync-required`: no cycles run (nothing the tracking says can be
 * trusted), health is Critical, and the VM keeps running. A resync an operator asked for, and the
 * initial replication, are never held back. Pure: time comes in as an argument.
 */
import { SecondsiteError } from '../errors.js';

export const RESYNC_MODES = ['automatic', 'manual', 'window'] as const;
export type ResyncMode = (typeof RESYNC_MODES)[number];

/** Minutes after 00:00 UTC; the window is [start, end), wrapping midnight when end < start. */
export interface ResyncWindow {
  readonly startMinuteUtc: number;
  readonly endMinuteUtc: number;
}

const MINUTES_PER_DAY = 24 * 60;
const MS_PER_MINUTE = 60_000;

/** Parses 'HH:MM-HH:MM' (UTC); start and end must differ. */
export function parseResyncWindow(text: string): ResyncWindow {
  const m = /^(\d{2}):(\d{2})-(\d{2}):(\d{2})$/.exec(text.trim());
  const nums = m ? m.slice(1).map(Number) : [];
  const [sh = 99, sm = 99, eh = 99, em = 99] = nums;
  if (!m || sh > 23 || eh > 23 || sm > 59 || em > 59) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `resync window '${text}' is not HH:MM-HH:MM in UTC (e.g. 22:00-06:00)`,
    );
  }
  const window = { startMinuteUtc: sh * 60 + sm, endMinuteUtc: eh * 60 + em };
  if (window.startMinuteUtc === window.endMinuteUtc) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `resync window '${text}' is empty: start and end are the same minute; use mode 'automatic' for any time`,
    );
  }
  return window;
}

export function formatResyncWindow(w: ResyncWindow): string {
  const hhmm = (min: number): string =>
    `${String(Math.floor(min / 60)).padStart(2, '0')}:${String(min % 60).padStart(2, '0')}`;
  return `${hhmm(w.startMinuteUtc)}-${hhmm(w.endMinuteUtc)}`;
}

function minuteOfDayUtc(wallMs: number): number {
  return Math.floor(wallMs / MS_PER_MINUTE) % MINUTES_PER_DAY;
}

export function inResyncWindow(w: ResyncWindow, wallMs: number): boolean {
  const m = minuteOfDayUtc(wallMs);
  return w.startMinuteUtc < w.endMinuteUtc
    ? m >= w.startMinuteUtc && m < w.endMinuteUtc
    : m >= w.startMinuteUtc || m < w.endMinuteUtc;
}

/** Wall-clock ms at which the window next opens (now, when inside it). */
export function nextWindowOpenWallMs(w: ResyncWindow, wallMs: number): number {
  if (inResyncWindow(w, wallMs)) return wallMs;
  const startOfMinute = wallMs - (wallMs % MS_PER_MINUTE);
  const ahead = (w.startMinuteUtc - minuteOfDayUtc(wallMs) + MINUTES_PER_DAY) % MINUTES_PER_DAY;
  return startOfMinute + ahead * MS_PER_MINUTE;
}

export interface ResyncGateInput {
  readonly mode: ResyncMode;
  readonly window?: ResyncWindow | undefined;
  /** An operator asked for this resync (`replication resync`): it runs at once. */
  readonly requestedByOperator: boolean;
  readonly wallMs: number;
}

/** null: the resync may run now; otherwise why it waits (for the report and the log). */
export function resyncHeldBack(input: ResyncGateInput): string | null {
  if (input.requestedByOperator || input.mode === 'automatic') return null;
  if (input.mode === 'manual')
    return "resync required: the policy resyncs manually; run 'secondsite host replication resync'";
  const w = input.window;
  if (!w) return null; // a window policy without a window is refused at enable; be permissive here
  if (inResyncWindow(w, input.wallMs)) return null;
  return `resync required: waits for the resync window ${formatResyncWindow(w)} UTC (opens ${new Date(
    nextWindowOpenWallMs(w, input.wallMs),
  ).toISOString()}), or run 'secondsite host replication resync' now`;
}

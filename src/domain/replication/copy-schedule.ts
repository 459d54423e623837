/**
 * When the next replication cycle starts. Copy frequency 30 s / 5 min / 15 min: cycles start on a fixed
 * grid from the first start; a grid slot that passes while a cycle still runs is *missed* (counted, not
 * queued). Continuous (frequency 0): the next cycle starts when the previous ends, but at least
 * `minGapMs` after the previous start. Pure: times are monotonic milliseconds passed in.
 */
export const COPY_FREQUENCIES_SECONDS = [0, 30, 300, 900] as const;
export type CopyFrequencySeconds = (typeof COPY_FREQUENCIES_SECONDS)[number];

export interface ScheduleDecision {
  /** Monotonic time the next cycle should start. */
  nextStartMs: number;
  /** Grid slots that passed while the previous cycle ran. */
  missed: number;
}

/**
 * After a cycle that started at `startedMs` and ended at `endedMs`, when does the next one start?
 */
export function nextCycle(
  frequencySeconds: number,
  startedMs: number,
  endedMs: number,
  minGapMs: number,
): ScheduleDecision {
  if (frequencySeconds <= 0) return { nextStartMs: Math.max(endedMs, startedMs + minGapMs), missed: 0 };
  const intervalMs = frequencySeconds * 1000;
  // grid slots strictly between the start and the end were missed; the next is the first at or after the end
  const missed = Math.max(0, Math.ceil((endedMs - startedMs) / intervalMs) - 1);
  return { nextStartMs: startedMs + (missed + 1) * intervalMs, missed };
}

export function isCopyFrequency(n: number): n is CopyFrequencySeconds {
  return (COPY_FREQUENCIES_SECONDS as readonly number[]).includes(n);
}

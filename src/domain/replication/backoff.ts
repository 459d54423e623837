/**
 * Reconnect backoff for transient failures: exponential from `initialMs`, doubling to `maxMs`, with up
 * to 25 % jitter taken from a caller-supplied random number in [0, 1). Pure.
 */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 30_000 };

/** Delay before retry number `attempt` (1 = first retry). */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random01: number): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  return Math.round(base * (1 - 0.25 * random01));
}

/**
 * Polling for tests: `until(what, probe)` calls `probe` until it answers something other than
 * undefined and returns that; errors thrown by the probe count as "not yet" (a server still starting),
 * and the last one is named when time runs out.
 */
import assert from 'node:assert/strict';

export interface UntilOptions {
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
}

export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  options: UntilOptions | number = {},
): Promise<T> {
  const o = typeof options === 'number' ? { timeoutMs: options } : options;
  const timeoutMs = o.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 250));
  }
  assert.fail(
    `${what} did not happen in ${timeoutMs} ms${last === undefined ? '' : ` (last error: ${last instanceof Error ? last.message : JSON.stringify(last)})`}`,
  );
}

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TokenBucket } from './token-bucket.js';

test('the long-run rate equals the configured rate on a simulated clock', async () => {
  let now = 0;
  const clock = { wallMs: () => now, monotonicMs: () => now };
  const sleep = (ms: number): Promise<void> => {
    now += ms;
    return Promise.resolve();
  };
  const bucket = new TokenBucket(1_000_000, 100_000, clock, sleep);
  let sent = 0;
  while (sent < 10_000_000) {
    await bucket.take(65_536);
    sent += 65_536;
  }
  // burst of 100 kB up front, then 1 MB/s
  const expectedMs = ((sent - 100_000) / 1_000_000) * 1000;
  assert.ok(Math.abs(now - expectedMs) < 100, `took ${now} ms, expected ~${expectedMs}`);
});

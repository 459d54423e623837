import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelayMs } from './backoff.js';
import { isCopyFrequency, nextCycle } from './copy-schedule.js';

test('fixed frequency: next slot on the grid, slots passed while running are missed', () => {
  assert.deepEqual(nextCycle(30, 0, 10_000, 1000), { nextStartMs: 30_000, missed: 0 });
  assert.deepEqual(nextCycle(30, 0, 30_000, 1000), { nextStartMs: 30_000, missed: 0 });
  assert.deepEqual(nextCycle(30, 0, 45_000, 1000), { nextStartMs: 60_000, missed: 1 });
  assert.deepEqual(nextCycle(300, 1000, 700_000, 1000), { nextStartMs: 901_000, missed: 2 });
});

test('continuous: as soon as the previous ends, but not sooner than the minimum gap after its start', () => {
  assert.deepEqual(nextCycle(0, 0, 200, 1000), { nextStartMs: 1000, missed: 0 });
  assert.deepEqual(nextCycle(0, 0, 5000, 1000), { nextStartMs: 5000, missed: 0 });
});

test('only the supported copy frequencies are accepted', () => {
  for (const f of [0, 30, 300, 900]) assert.ok(isCopyFrequency(f));
  for (const f of [1, 60, 3600]) assert.ok(!isCopyFrequency(f));
});

test('backoff doubles to the cap with at most 25 % jitter', () => {
  const p = { initialMs: 100, maxMs: 1000 };
  assert.equal(backoffDelayMs(p, 1, 0), 100);
  assert.equal(backoffDelayMs(p, 3, 0), 400);
  assert.equal(backoffDelayMs(p, 10, 0), 1000);
  assert.equal(backoffDelayMs(p, 1, 0.999), 75);
});

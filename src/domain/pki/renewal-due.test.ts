import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renewalDue, renewalDueAtMs } from './renewal-due.js';

const DAY_MS = 24 * 3600 * 1000;
const provider = { notBeforeMs: 0, notAfterMs: 365 * DAY_MS };

test('a 365-day certificate is due once less than a third remains', () => {
  assert.equal(renewalDueAtMs(provider), (365 * 2 * DAY_MS) / 3);
  assert.equal(renewalDue(provider, 243 * DAY_MS), false);
  assert.equal(renewalDue(provider, 244 * DAY_MS), true);
  assert.equal(renewalDue(provider, 400 * DAY_MS), true, 'an ended certificate is due');
});

test('the fraction bounds: 1 is due at once, 0 only at the end; outside is refused', () => {
  assert.equal(renewalDue(provider, 0, 1), true);
  assert.equal(renewalDue(provider, 365 * DAY_MS - 1, 0), false);
  assert.equal(renewalDue(provider, 365 * DAY_MS, 0), true);
  assert.throws(() => renewalDue(provider, 0, 1.5), RangeError);
  assert.throws(() => renewalDue(provider, 0, Number.NaN), RangeError);
});

test('a certificate whose end is before its start is due at its end', () => {
  assert.equal(renewalDueAtMs({ notBeforeMs: 10, notAfterMs: 5 }), 5);
});

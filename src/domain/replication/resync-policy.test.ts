import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSecondsiteError } from '../errors.js';
import { Rng, seedFrom } from '../random.js';
import {
  formatResyncWindow,
  inResyncWindow,
  nextWindowOpenWallMs,
  parseResyncWindow,
  resyncHeldBack,
} from './resync-policy.js';

const DAY = 24 * 3600_000;
const at = (hh: number, mm: number, day = 20_000): number => day * DAY + (hh * 60 + mm) * 60_000;

test('a window parses, prints back, and refuses bad or empty text', () => {
  assert.equal(formatResyncWindow(parseResyncWindow('22:00-06:30')), '22:00-06:30');
  for (const bad of ['22-06', '24:00-01:00', '10:60-11:00', '', '01:00-01:00', '1:00-2:00']) {
    assert.throws(
      () => parseResyncWindow(bad),
      (e: unknown) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT'),
      bad,
    );
  }
});

test('inside / outside, with and without wrapping midnight', () => {
  const day = parseResyncWindow('09:00-17:00');
  assert.ok(inResyncWindow(day, at(9, 0)));
  assert.ok(inResyncWindow(day, at(16, 59)));
  assert.ok(!inResyncWindow(day, at(17, 0)));
  assert.ok(!inResyncWindow(day, at(8, 59)));
  const night = parseResyncWindow('22:00-06:00');
  assert.ok(inResyncWindow(night, at(23, 30)));
  assert.ok(inResyncWindow(night, at(0, 0)));
  assert.ok(inResyncWindow(night, at(5, 59)));
  assert.ok(!inResyncWindow(night, at(6, 0)));
  assert.ok(!inResyncWindow(night, at(12, 0)));
});

test('the next opening is inside the window, within a day, and no earlier opening exists (seeded)', () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 7);
  const rng = new Rng(seed);
  for (let i = 0; i < 500; i++) {
    const start = rng.int(1440);
    let end = rng.int(1440);
    if (end === start) end = (start + 1) % 1440;
    const w = { startMinuteUtc: start, endMinuteUtc: end };
    const now = at(0, 0) + rng.int(DAY);
    const open = nextWindowOpenWallMs(w, now);
    const msg = `seed ${seed}, window ${formatResyncWindow(w)}, now ${new Date(now).toISOString()}`;
    assert.ok(open >= now - 60_000 && open < now + DAY, msg);
    assert.ok(inResyncWindow(w, open), msg);
    if (open > now) assert.ok(!inResyncWindow(w, open - 60_000) || open - 60_000 < now, msg);
  }
});

test('the gate: automatic and operator resyncs run at once; manual waits; window waits outside it', () => {
  const w = parseResyncWindow('22:00-06:00');
  const base = { window: w, requestedByOperator: false };
  assert.equal(resyncHeldBack({ ...base, mode: 'automatic', wallMs: at(12, 0) }), null);
  assert.match(resyncHeldBack({ ...base, mode: 'manual', wallMs: at(12, 0) }) ?? '', /manually/);
  assert.equal(
    resyncHeldBack({ ...base, mode: 'manual', requestedByOperator: true, wallMs: at(12, 0) }),
    null,
  );
  assert.match(
    resyncHeldBack({ ...base, mode: 'window', wallMs: at(12, 0) }) ?? '',
    /22:00-06:00.*T22:00:00/,
  );
  assert.equal(resyncHeldBack({ ...base, mode: 'window', wallMs: at(23, 0) }), null);
  assert.equal(
    resyncHeldBack({ ...base, mode: 'window', requestedByOperator: true, wallMs: at(12, 0) }),
    null,
  );
});

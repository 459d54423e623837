import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HOUR_MS, MAX_RETENTION_HOURS, planRetention, type RetentionPoint } from './retention.policy.js';
import { Rng, seedFrom } from '../random.js';
import { isSecondsiteError } from '../errors.js';

const T0 = Date.UTC(2026, 0, 1);

function point(sequence: number, cutWallMs: number, app = false): RetentionPoint {
  return {
    pointId: `p${sequence}`,
    sequence,
    cutWallMs,
    consistency: app ? 'app-consistent' : 'crash-consistent',
  };
}

function kept(points: RetentionPoint[], nowMs: number, hours: number, pinned?: Set<string>): string[] {
  return planRetention({
    points,
    nowMs,
    retentionHours: hours,
    ...(pinned ? { pinnedPointIds: pinned } : {}),
  })
    .filter((d) => d.keep)
    .map((d) => d.pointId);
}

test('keeps the latest point always, even outside the window', () => {
  const pts = [point(1, T0), point(2, T0 + 10 * 60_000)];
  assert.deepEqual(kept(pts, T0 + 100 * HOUR_MS, 24), ['p2']);
  assert.deepEqual(kept(pts, T0 + 100 * HOUR_MS, 0), ['p2']);
});

test('keeps the newest point of each hour bucket inside the window, drops the rest with a reason', () => {
  // Every 15 minutes for 5 hours.
  const pts = Array.from({ length: 20 }, (_, i) => point(i + 1, T0 + i * 15 * 60_000));
  const nowMs = T0 + 5 * HOUR_MS;
  const decisions = planRetention({ points: pts, nowMs, retentionHours: 3 });
  const keptIds = decisions.filter((d) => d.keep).map((d) => d.pointId);
  // window (T0+2h, T0+5h]: buckets 2,3,4 -> newest are p12, p16, p20
  assert.deepEqual(keptIds, ['p12', 'p16', 'p20']);
  const d1 = decisions[0];
  assert.ok(d1 && !d1.keep && d1.reason === 'outside-window');
  const d10 = decisions[10];
  assert.ok(d10 && !d10.keep && d10.reason === 'superseded-in-hour');
});

test('an app-consistent point survives a newer crash-consistent point of the same hour, and is marked', () => {
  const pts = [point(1, T0 + 60_000, true), point(2, T0 + 120_000), point(3, T0 + HOUR_MS + 1)];
  const decisions = planRetention({ points: pts, nowMs: T0 + 2 * HOUR_MS, retentionHours: 24 });
  assert.deepEqual(
    decisions.map((d) => (d.keep ? d.reasons.join('+') : 'drop')),
    ['app-consistent-hourly', 'hourly', 'latest+hourly'],
  );
});

test('pinned points are kept', () => {
  const pts = [point(1, T0), point(2, T0 + 1), point(3, T0 + 2)];
  assert.deepEqual(kept(pts, T0 + 1000 * HOUR_MS, 1, new Set(['p1'])), ['p1', 'p3']);
});

test('accepts 0 .. a year of hours (no cap below 720), refuses others', () => {
  for (const h of [0, 72, 720, MAX_RETENTION_HOURS])
    planRetention({ points: [], nowMs: T0, retentionHours: h });
  for (const h of [-1, 1.5, MAX_RETENTION_HOURS + 1, Number.NaN]) {
    assert.throws(
      () => planRetention({ points: [], nowMs: T0, retentionHours: h }),
      (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT'),
    );
  }
});

test('randomized: matches a brute-force reading of the rule and is stable as time moves on', () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 0x7e7e71);
  const rng = new Rng(seed);
  for (let round = 0; round < 300; round++) {
    const n = 1 + rng.int(60);
    const pts: RetentionPoint[] = [];
    let t = T0 + rng.int(HOUR_MS);
    for (let i = 0; i < n; i++) {
      t += rng.int(3 * HOUR_MS);
      pts.push(point(i + 1, t, rng.chance(0.2)));
    }
    const hours = rng.int(800);
    const nowMs = t + rng.int(200 * HOUR_MS);
    const got = new Set(kept(pts, nowMs, hours));
    for (const p of pts) {
      const inWindow = p.cutWallMs > nowMs - hours * HOUR_MS;
      const sameHour = pts.filter(
        (q) => Math.floor(q.cutWallMs / HOUR_MS) === Math.floor(p.cutWallMs / HOUR_MS),
      );
      const newest = sameHour.every((q) => q.sequence <= p.sequence);
      const newestApp =
        p.consistency === 'app-consistent' &&
        sameHour.every((q) => q.consistency !== 'app-consistent' || q.sequence <= p.sequence);
      const expected = p.sequence === n || (inWindow && (newest || newestApp));
      assert.equal(got.has(p.pointId), expected, `seed=${seed} round=${round} point=${p.pointId}`);
    }
    // Stable as time moves on: retention applied now and again later keeps exactly what one
    // application later would, so no dropped point is ever needed again.
    const survivors = pts.filter((p) => got.has(p.pointId));
    const laterMs = nowMs + rng.int(10 * HOUR_MS);
    assert.deepEqual(
      kept(survivors, laterMs, hours),
      kept(pts, laterMs, hours),
      `seed=${seed} round=${round}`,
    );
    assert.deepEqual(
      kept(survivors, nowMs, hours),
      survivors.map((p) => p.pointId),
      `seed=${seed} round=${round}`,
    );
  }
});

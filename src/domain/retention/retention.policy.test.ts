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

function kept(points: RetentionPoint[], hours: number, pinned?: Set<string>): string[] {
  return planRetention({
    points,
    retentionHours: hours,
    ...(pinned ? { pinnedPointIds: pinned } : {}),
  })
    .filter((d) => d.keep)
    .map((d) => d.pointId);
}

test('keeps the latest point always, and with 0 hours only it', () => {
  const pts = [point(1, T0), point(2, T0 + 10 * 60_000)];
  assert.deepEqual(kept(pts, 0), ['p2']);
  // a latest point whose cut is older than another's (the primary's clock went back) is still kept
  assert.deepEqual(kept([point(1, T0 + 10 * HOUR_MS), point(2, T0)], 0), ['p1', 'p2']);
});

test("the window ends at the latest point's cut, not at the replica's clock", () => {
  // Hourly points for 100 hours, then nothing: whenever retention runs, the 24 hours before the
  // latest cut are kept (a skewed or later replica clock cannot age them out).
  const pts = Array.from({ length: 100 }, (_, i) => point(i + 1, T0 + i * HOUR_MS + 1));
  assert.deepEqual(
    kept(pts, 24),
    pts.slice(76).map((p) => p.pointId),
  );
});

test('keeps the newest point of each hour bucket inside the window, drops the rest with a reason', () => {
  // Every 15 minutes for 5 hours.
  const pts = Array.from({ length: 20 }, (_, i) => point(i + 1, T0 + i * 15 * 60_000));
  const decisions = planRetention({ points: pts, retentionHours: 3 });
  const keptIds = decisions.filter((d) => d.keep).map((d) => d.pointId);
  // the latest cut is T0+4h45m: window (T0+1h45m, T0+4h45m], in which buckets 2, 3, 4 have points
  // (p8, cut at T0+1h45m, is just outside) -> newest are p12, p16, p20
  assert.deepEqual(keptIds, ['p12', 'p16', 'p20']);
  const d1 = decisions[0];
  assert.ok(d1 && !d1.keep && d1.reason === 'outside-window');
  const d10 = decisions[10];
  assert.ok(d10 && !d10.keep && d10.reason === 'superseded-in-hour');
});

test('an app-consistent point survives a newer crash-consistent point of the same hour, and is marked', () => {
  const pts = [point(1, T0 + 60_000, true), point(2, T0 + 120_000), point(3, T0 + HOUR_MS + 1)];
  const decisions = planRetention({ points: pts, retentionHours: 24 });
  assert.deepEqual(
    decisions.map((d) => (d.keep ? d.reasons.join('+') : 'drop')),
    ['app-consistent-hourly', 'hourly', 'latest+hourly'],
  );
});

test('pinned points are kept', () => {
  const pts = [point(1, T0), point(2, T0 + 1), point(3, T0 + 2)];
  assert.deepEqual(kept([...pts, point(4, T0 + 1000 * HOUR_MS)], 1, new Set(['p1'])), ['p1', 'p4']);
});

test('accepts 0 .. a year of hours (no cap below 720), refuses others', () => {
  for (const h of [0, 72, 720, MAX_RETENTION_HOURS]) planRetention({ points: [], retentionHours: h });
  for (const h of [-1, 1.5, MAX_RETENTION_HOURS + 1, Number.NaN]) {
    assert.throws(
      () => planRetention({ points: [], retentionHours: h }),
      (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT'),
    );
  }
});

test('randomized: matches a brute-force reading of the rule and is stable as new points arrive', () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 0x7e7e71);
  const rng = new Rng(seed);
  const series = (from: number, first: number, n: number): RetentionPoint[] => {
    const pts: RetentionPoint[] = [];
    let t = from;
    for (let i = 0; i < n; i++) {
      t += rng.int(3 * HOUR_MS);
      pts.push(point(first + i, t, rng.chance(0.2)));
    }
    return pts;
  };
  for (let round = 0; round < 300; round++) {
    const n = 1 + rng.int(60);
    const pts = series(T0 + rng.int(HOUR_MS), 1, n);
    const hours = rng.int(800);
    const latestCut = (pts[pts.length - 1] as RetentionPoint).cutWallMs;
    const got = new Set(kept(pts, hours));
    for (const p of pts) {
      const inWindow = p.cutWallMs > latestCut - hours * HOUR_MS;
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
    // Stable as new points arrive: retention applied now and again after newer points keeps exactly
    // what one application after them would, so no dropped point is ever needed again.
    const survivors = pts.filter((p) => got.has(p.pointId));
    const newer = series(latestCut, n + 1, rng.int(8));
    assert.deepEqual(
      kept([...survivors, ...newer], hours),
      kept([...pts, ...newer], hours),
      `seed=${seed} round=${round}`,
    );
    assert.deepEqual(
      kept(survivors, hours),
      survivors.map((p) => p.pointId),
      `seed=${seed} round=${round}`,
    );
  }
});

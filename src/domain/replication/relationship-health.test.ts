import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newRelationshipStats, recordOutcome } from './relationship-stats.js';
import { buildReport } from './replication-report.js';

const HOUR = 3_600_000;

function healthy(now: number) {
  const s = newRelationshipStats('vm-1', 300);
  s.lastPoint = { pointId: 'p1', sequence: 1, cutWallMs: now - 60_000, committedWallMs: now - 50_000 };
  s.lastSuccessWallMs = now - 50_000;
  for (let i = 0; i < 10; i++) recordOutcome(s, 'ok');
  return s;
}

test('a relationship shipping on time is Normal and reports its lag', () => {
  const now = 10 * HOUR;
  const rep = buildReport(healthy(now), now);
  assert.equal(rep.health.level, 'Normal');
  assert.equal(rep.lagMs, 60_000);
  assert.equal(rep.cycles.ok, 10);
});

test('more than 20 % missed or failed cycles is a Warning', () => {
  const now = 10 * HOUR;
  const s = healthy(now);
  recordOutcome(s, 'missed');
  recordOutcome(s, 'failed');
  assert.equal(buildReport(s, now).health.level, 'Normal'); // 2 of 12
  recordOutcome(s, 'failed');
  const rep = buildReport(s, now); // 3 of 13 = 23 %
  assert.equal(rep.health.level, 'Warning');
  assert.match(rep.health.reasons.join(';'), /3 of the last 13/);
});

test('last success older than max(1 h, 6 intervals) is a Warning; lag far beyond is Critical', () => {
  const now = 10 * HOUR;
  const s = healthy(now);
  s.lastSuccessWallMs = now - HOUR - 1000;
  s.lastPoint = { pointId: 'p1', sequence: 1, cutWallMs: now - HOUR + 1000, committedWallMs: now - HOUR };
  let rep = buildReport(s, now);
  assert.equal(rep.health.level, 'Warning');
  s.lastPoint = { ...s.lastPoint, cutWallMs: now - 2 * HOUR };
  rep = buildReport(s, now);
  assert.equal(rep.health.level, 'Critical');
});

test('resync required or repeated permanent errors are Critical, with the reason', () => {
  const now = 10 * HOUR;
  const s = healthy(now);
  s.resyncRequired = true;
  assert.equal(buildReport(s, now).health.level, 'Critical');
  s.resyncRequired = false;
  s.consecutivePermanentErrors = 3;
  s.lastError = { code: 'SECONDSITE_ERR_STALE_EPOCH', message: 'fenced', retry: 'permanent', atWallMs: now };
  const rep = buildReport(s, now);
  assert.equal(rep.health.level, 'Critical');
  assert.match(rep.health.reasons[0] ?? '', /STALE_EPOCH/);
});

test('the report is plain JSON', () => {
  const now = 10 * HOUR;
  const rep = buildReport(healthy(now), now);
  assert.deepEqual(JSON.parse(JSON.stringify(rep)), rep);
});

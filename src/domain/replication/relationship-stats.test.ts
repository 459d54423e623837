import assert from 'node:assert/strict';
import { test } from 'node:test';
import { measureReplication, newRelationshipStats, recordCycle } from './relationship-stats.js';

test('measure: averages and maxima of cycle sizes and latencies, counts, pending bytes', () => {
  const stats = newRelationshipStats('vm1', 30);
  assert.equal(measureReplication(stats, 0).averageSizeBytes, 0, 'no cycle yet: zeros, not NaN');
  recordCycle(stats, 1000, 200);
  recordCycle(stats, 3000, 600);
  recordCycle(stats, 2000, 100);
  stats.cyclesOk = 3;
  stats.cyclesFailed = 1;
  stats.cyclesMissed = 2;
  const m = measureReplication(stats, 4096);
  assert.deepEqual(
    {
      averageSizeBytes: m.averageSizeBytes,
      maxSizeBytes: m.maxSizeBytes,
      averageLatencyMs: m.averageLatencyMs,
      maxLatencyMs: m.maxLatencyMs,
      successfulCycles: m.successfulCycles,
      failedCycles: m.failedCycles,
      missedCycles: m.missedCycles,
      pendingBytes: m.pendingBytes,
    },
    {
      averageSizeBytes: 2000,
      maxSizeBytes: 3000,
      averageLatencyMs: 300,
      maxLatencyMs: 600,
      successfulCycles: 3,
      failedCycles: 1,
      missedCycles: 2,
      pendingBytes: 4096,
    },
  );
});

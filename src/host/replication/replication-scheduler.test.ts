import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newRelationshipStats } from '../../domain/replication/relationship-stats.js';
import { ReplicationScheduler } from './replication-scheduler.js';

function fakeTime() {
  let now = 0;
  return {
    clock: { wallMs: () => now, monotonicMs: () => now },
    advance: (ms: number) => {
      now += ms;
    },
    now: () => now,
  };
}

async function runScheduler(frequency: number, durations: number[], minGapMs?: number) {
  const t = fakeTime();
  const stats = newRelationshipStats('vm-1', frequency);
  const starts: number[] = [];
  let stopRequested = false;
  let i = 0;
  const sched = new ReplicationScheduler({
    clock: t.clock,
    copyFrequencySeconds: frequency,
    ...(minGapMs !== undefined ? { minGapMs } : {}),
    stats,
    sleep: (ms, signal) => {
      t.advance(ms);
      if (!stopRequested) return Promise.resolve();
      // park after the last scripted cycle until stop() aborts the wait
      return new Promise<void>((r) => signal.addEventListener('abort', () => r()));
    },
    runCycle: () => {
      starts.push(t.now());
      const d = durations[i++];
      if (i >= durations.length) stopRequested = true;
      if (d === undefined || d < 0) {
        t.advance(-(d ?? 0));
        return Promise.reject(new Error('cycle failed'));
      }
      t.advance(d);
      return Promise.resolve();
    },
  });
  sched.start();
  while (!stopRequested) await new Promise((r) => setImmediate(r));
  await sched.stop();
  return { starts, stats };
}

test('30 s frequency starts on the grid and counts slots missed by a long cycle', async () => {
  const { starts, stats } = await runScheduler(30, [1000, 65_000, 2000, 1000]);
  assert.deepEqual(starts, [0, 30_000, 120_000, 150_000]);
  assert.equal(stats.cyclesMissed, 2);
  assert.equal(stats.cyclesOk, 4);
});

test('continuous mode starts the next cycle when the previous ends, with a minimum gap', async () => {
  const { starts } = await runScheduler(0, [200, 3000, 10], 1000);
  assert.deepEqual(starts, [0, 1000, 4000]);
});

test('failed cycles are counted and the schedule goes on', async () => {
  const { starts, stats } = await runScheduler(300, [-5000, 1000]);
  assert.deepEqual(starts, [0, 300_000]);
  assert.equal(stats.cyclesFailed, 1);
  assert.equal(stats.cyclesOk, 1);
});

test('an unsupported copy frequency is refused', () => {
  assert.throws(
    () =>
      new ReplicationScheduler({
        clock: fakeTime().clock,
        copyFrequencySeconds: 60,
        stats: newRelationshipStats('x', 60),
        sleep: () => Promise.resolve(),
        runCycle: () => Promise.resolve(),
      }),
    /not supported/,
  );
});

// Child-process helpers: ready line, early exit, timeout, kill -9, stop, cleanup; and the crash-test
// shape they exist for: a child workload killed with SIGKILL leaves a history file the parent can read
// and an image the checker accepts as a recovery point at the kill time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seedFrom } from '../../src/domain/random.js';
import { checkRecoveryPoint, formatReport } from '../../src/testing/checker/recovery-point-checker.js';
import {
  killAllChildren,
  liveChildren,
  registerChildCleanup,
  spawnSecondsite,
  spawnTsScript,
} from '../../src/testing/process/child-process.js';
import { monotonicNowMs, readHistoryFile } from '../../src/testing/workload/write-history.js';

registerChildCleanup();
const FIXTURE = 'test/testing/fixtures/test-child.ts';
const SEED = seedFrom(process.env.SECONDSITE_SEED, 31337);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('waitForReady returns the ready JSON; kill9 ends the process', async () => {
  const child = spawnTsScript(FIXTURE, ['ready']);
  const ready = await child.waitForReady();
  assert.equal(ready.pid, child.pid);
  assert.ok(child.stdoutLines.includes('starting up (not JSON)'));
  assert.ok(alive(child.pid));
  const exit = await child.kill9();
  assert.equal(exit.signal, 'SIGKILL');
  assert.equal(alive(child.pid), false);
  assert.equal(child.running, false);
});

test('a child that exits before ready rejects with its exit code and stderr', async () => {
  const child = spawnTsScript(FIXTURE, ['fail']);
  await assert.rejects(
    child.waitForReady(),
    (e: Error) => /code 3/.test(e.message) && /boom: bad config/.test(e.message),
  );
});

test('a child that never gets ready times out; stop() ends it gracefully', async () => {
  const child = spawnTsScript(FIXTURE, ['silent']);
  await child.waitForLine((line) => line === 'running, never ready');
  await assert.rejects(child.waitForReady(500), { code: 'SECONDSITE_ERR_TIMEOUT' });
  const exit = await child.stop('SIGTERM', 5000);
  assert.equal(exit.code, 0);
});

test('killAllChildren leaves nothing running; the binary runs as a child', async () => {
  const a = spawnTsScript(FIXTURE, ['silent']);
  const b = spawnTsScript(FIXTURE, ['silent']);
  assert.ok(liveChildren().includes(a) && liveChildren().includes(b));
  await killAllChildren();
  assert.equal(liveChildren().length, 0);
  assert.ok(!alive(a.pid) && !alive(b.pid));

  const bin = spawnSecondsite(['--help']);
  const exit = await bin.exited;
  assert.equal(exit.code, 0, bin.stderr);
  assert.ok(bin.stdoutLines.some((l) => l.startsWith('usage: secondsite')));
});

test('kill -9 of a child workload: the history is readable and the image is a recovery point', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'secondsite-child-'));
  try {
    for (let i = 0; i < 3; i++) {
      const seed = SEED + i;
      const image = join(dir, `disk-${i}.img`);
      const historyPath = join(dir, `history-${i}.jsonl`);
      const child = spawnTsScript(FIXTURE, ['workload', image, historyPath, String(seed)]);
      await child.waitForReady(30_000);
      await new Promise((r) => setTimeout(r, 100 + 150 * i));
      const killMs = monotonicNowMs();
      await child.kill9();
      const history = readHistoryFile(historyPath);
      assert.ok(history.maxEpoch >= 20, `seed ${seed}`);
      // The page cache holds every completed write: a legal recovery point at the kill time.
      const report = await checkRecoveryPoint({
        history,
        disks: [{ diskId: 0, path: image }],
        cutTimeMs: killMs,
      });
      assert.ok(report.ok, `seed ${seed}\n${formatReport(report)}`);
      assert.ok(
        report.maxEpoch >= history.maxEpoch - 1,
        `seed ${seed}: E ${report.maxEpoch} of ${history.maxEpoch}`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

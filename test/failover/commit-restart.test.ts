/**
 * A failover commit killed after the promoted disk joined the disk store but before the protection
 * record said 'failed-over' (found by test/failover/reverse-crash.test.ts, seed 1): at the restart the
 * disk service already serves the disk, and the failover service must finish the commit over that
 * export (it used to add the export again, fail, leave the VM down and the commit refused for good).
 * The state is made exactly: a committed failover whose record is put back to the commit's step.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { FailoverView } from '../../src/host/failover/failover-service.js';
import { cleanupsAfterAll, MiB, replicaView, twoHostLab } from '../host/fixtures.js';
import { failoverView, guestRunning, protectedVm } from './failover-fixtures.js';

const cleanups = cleanupsAfterAll();

test('a commit killed between adopting the disk and recording it finishes at the restart', async () => {
  const { lab, cleanup } = await twoHostLab('ss-commit-restart-');
  cleanups.push(cleanup);
  const a = lab.host('host-a');
  const b = lab.host('host-b');
  await protectedVm(lab, 'c1', { recordsPerSec: 50, diskBytes: 8 * MiB });
  const prepared = await a.client.post<{ finalPoint: { pointId: string } }>(
    '/v1/relationships/c1/prepare-failover',
    { timeoutMs: 10_000 },
  );
  await b.client.post('/v1/replicas/c1/failover', { pointId: prepared.finalPoint.pointId });
  await b.client.post('/v1/replicas/c1/failover/commit');
  await assert.rejects(replicaView(lab, 'c1'), /no replica/);

  // kill -9 at that moment: the store is gone and the disk registered, the record still committing
  await lab.kill('host-b');
  const recordPath = join(b.stateDir, 'protection', 'c1.json');
  const record = JSON.parse(await readFile(recordPath, 'utf8')) as Record<string, unknown>;
  assert.equal(record['state'], 'failed-over');
  await writeFile(
    recordPath,
    `${JSON.stringify({ ...record, state: 'failover-pending-commit', step: 'committing' }, null, 2)}\n`,
  );
  await lab.start('host-b');

  assert.equal((await failoverView(lab, 'c1')).state, 'failed-over', 'the restart finished the commit');
  const running = await guestRunning(lab, 'host-b', 'c1');
  assert.ok((running.guest?.bootSeq ?? 0) > 0, 'the VM runs on its committed disk');
  const again = await b.client.post<FailoverView>('/v1/replicas/c1/failover/commit');
  assert.equal(again.state, 'failed-over', 'a re-issued commit confirms it');
  await b.client.get('/v1/disks/c1-d0');
  await b.client.post('/v1/vms/c1/power-off');
});

/**
 * Test failover end to end (docs/design/failover.md section 3): a guest VM on host A writes its record
 * log and replicates continuously to host B. A test failover on B boots a test VM from the latest
 * point: its guest validates its log at boot and answers; replication keeps committing points during
 * the test; cleanup leaves no VM, process, export or view file behind, and replication never paused.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { FailoverView } from '../../src/host/failover/failover-service.js';
import type { VmStatus } from '../../src/host/vm/vm-driver.js';
import { cleanupsAfterAll, replicaView, twoHostLab, waitFor } from '../host/fixtures.js';
import { failoverView, guestRunning, processAlive, protectedVm, vmStatus } from './failover-fixtures.js';

const cleanups = cleanupsAfterAll();

test('test failover boots a test VM from a point while replication continues; cleanup leaves nothing', async () => {
  const { lab, cleanup } = await twoHostLab('ss-test-failover-');
  cleanups.push(cleanup);
  const b = lab.host('host-b');
  await protectedVm(lab, 'vm1');
  const before = (await replicaView(lab, 'vm1')).latestPoint;
  assert.ok(before);

  const started = await b.client.post<FailoverView>('/v1/replicas/vm1/test-failover', {});
  assert.equal(started.state, 'test-failover');
  assert.equal(started.pointId, before.pointId);
  const testVm = await guestRunning(lab, 'host-b', 'vm1-test');
  assert.ok(testVm.guest && testVm.guest.bootSeq > 0, 'the test VM found its log and validated it at boot');
  // the test VM writes into its view only; the primary's VM keeps running and replicating
  await waitFor(
    'a new point while the test VM runs',
    async () => {
      const latest = (await replicaView(lab, 'vm1')).latestPoint;
      return latest && latest.sequence > before.sequence + 1 ? latest : null;
    },
    30_000,
  );
  const again = await b.client.post<FailoverView>('/v1/replicas/vm1/test-failover', {});
  assert.equal(again.pointId, before.pointId, 'a second request returns the running test failover');
  await assert.rejects(
    b.client.post('/v1/replicas/vm1/failover', {}),
    /test-failover.*clean up the test failover first/,
    'no failover while a test failover runs',
  );

  const pid = testVm.pid;
  assert.ok(pid !== null);
  const cleaned = await b.client.delete<{ cleaned: boolean; view: FailoverView }>(
    '/v1/replicas/vm1/test-failover',
  );
  assert.equal(cleaned.cleaned, true);
  assert.equal(cleaned.view.state, 'receiving');
  const { vms } = await b.client.get<{ vms: VmStatus[] }>('/v1/vms');
  assert.deepEqual(
    vms.map((v) => v.vmId),
    [],
    'no VM left on host B',
  );
  assert.equal(processAlive(pid), false, 'the test VM process is gone');
  assert.deepEqual(await readdir(join(b.stateDir, 'replicas', 'vm1', 'views')), [], 'no view file left');
  await assert.rejects(vmStatus(lab, 'host-b', 'vm1-test'), /no VM/);
  assert.equal((await failoverView(lab, 'vm1')).exports.length, 0);
  const again2 = await b.client.delete<{ cleaned: boolean }>('/v1/replicas/vm1/test-failover');
  assert.equal(again2.cleaned, false, 'cleaning up twice is not an error');
  const rel = await lab.host('host-a').client.get<{ report: { state: string } }>('/v1/relationships/vm1');
  assert.notEqual(rel.report.state, 'failed', 'replication never stopped');
});

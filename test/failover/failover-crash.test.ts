/**
 * kill -9 of the replica host's agent at random moments of every failover operation (failover.md
 * section 9): test failover, test cleanup, failover, change of point, commit, cancel. After each
 * restart the relationship is in the state before the operation or after it, never in between: its
 * VM runs exactly when the state says so, a view exists exactly when the state needs one, and a
 * primary VM and a recovery VM never run at the same time. Re-issuing the operation then completes it.
 * SECONDSITE_FAILOVER_CRASH_CHAINS sets the chains (default 6, 5 operations each), SECONDSITE_SEED the seed.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { Rng, seedFrom } from '../../src/domain/random.js';
import type { FailoverView } from '../../src/host/failover/failover-service.js';
import type { VmStatus } from '../../src/host/vm/vm-driver.js';
import { freePort, type HostLab } from '../../src/lab/host-lab.js';
import {
  cleanupsAfterAll,
  createDisks,
  enableReplication,
  MiB,
  replicaView,
  twoHostLab,
  waitFor,
} from '../host/fixtures.js';
import { failoverView } from './failover-fixtures.js';

const cleanups = cleanupsAfterAll();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Op {
  name: string;
  before: FailoverView['state'];
  after: FailoverView['state'];
  run(lab: HostLab, vmId: string): Promise<unknown>;
}

type Template = { nics: Array<{ nicId: string; network: string; ipv4: string; port: number }> };

function ops(template: Template, finish: 'commit' | 'cancel'): Op[] {
  const b = (lab: HostLab): HostLab['host'] extends (id: string) => infer H ? H : never => lab.host('host-b');
  const last: Op =
    finish === 'commit'
      ? {
          name: 'commit',
          before: 'failover-pending-commit',
          after: 'failed-over',
          run: (lab, vmId) => b(lab).client.post(`/v1/replicas/${vmId}/failover/commit`),
        }
      : {
          name: 'cancel',
          before: 'failover-pending-commit',
          after: 'receiving',
          run: (lab, vmId) => b(lab).client.post(`/v1/replicas/${vmId}/failover/cancel`),
        };
  return [
    {
      name: 'test-failover',
      before: 'receiving',
      after: 'test-failover',
      run: (lab, vmId) => b(lab).client.post(`/v1/replicas/${vmId}/test-failover`, { vm: template }),
    },
    {
      name: 'test-cleanup',
      before: 'test-failover',
      after: 'receiving',
      run: (lab, vmId) => b(lab).client.delete(`/v1/replicas/${vmId}/test-failover`),
    },
    {
      name: 'failover',
      before: 'receiving',
      after: 'failover-pending-commit',
      run: (lab, vmId) => b(lab).client.post(`/v1/replicas/${vmId}/failover`, { vm: template }),
    },
    {
      name: 'change-point',
      before: 'failover-pending-commit',
      after: 'failover-pending-commit',
      run: async (lab, vmId) => {
        // another retained point than the current one (retention stopped at the failover's epoch)
        const { points } = await replicaView(lab, vmId);
        const current = (await failoverView(lab, vmId)).pointId;
        const other = points.find((p) => p.pointId !== current) ?? points[0];
        return b(lab).client.post(`/v1/replicas/${vmId}/failover/change-point`, { pointId: other?.pointId });
      },
    },
    last,
  ];
}

async function vmsOn(lab: HostLab, hostId: string): Promise<VmStatus[]> {
  return (await lab.host(hostId).client.get<{ vms: VmStatus[] }>('/v1/vms')).vms;
}

const running = (v: VmStatus | undefined): boolean =>
  v !== undefined && v.state !== 'off' && v.state !== 'failed';

/** The invariants of one relationship's state on host B (and host A's VM). */
async function checkState(
  lab: HostLab,
  vmId: string,
  state: FailoverView['state'],
  where: string,
): Promise<void> {
  const bVms = await vmsOn(lab, 'host-b');
  const testVm = bVms.find((v) => v.vmId === `${vmId}-test`);
  const recoveryVm = bVms.find((v) => v.vmId === vmId);
  const aVm = (await vmsOn(lab, 'host-a')).find((v) => v.vmId === vmId);
  const views = await readdir(join(lab.host('host-b').stateDir, 'replicas', vmId, 'views')).catch(() => null);
  assert.ok(!(running(aVm) && running(recoveryVm)), `${where}: the primary VM and the recovery VM both run`);
  if (state === 'receiving') {
    assert.ok(!running(testVm) && !running(recoveryVm), `${where}: receiving, but a VM runs on B`);
    assert.deepEqual(views ?? [], [], `${where}: receiving, but views are left`);
  } else if (state === 'test-failover') {
    await waitFor(`${where}: the test VM runs`, async () =>
      running((await vmsOn(lab, 'host-b')).find((v) => v.vmId === `${vmId}-test`)),
    );
    assert.ok(!running(recoveryVm), `${where}: a recovery VM runs during a test failover`);
    assert.deepEqual(views, [`test-${vmId}`], `${where}: exactly the test view`);
  } else if (state === 'failover-pending-commit') {
    await waitFor(`${where}: the recovery VM runs`, async () =>
      running((await vmsOn(lab, 'host-b')).find((v) => v.vmId === vmId)),
    );
    assert.deepEqual(views, [`failover-${vmId}`], `${where}: exactly the failover view`);
  } else if (state === 'failed-over') {
    await waitFor(`${where}: the committed VM runs`, async () =>
      running((await vmsOn(lab, 'host-b')).find((v) => v.vmId === vmId)),
    );
    assert.equal(views, null, `${where}: the replica store is gone after a commit`);
    await lab.host('host-b').client.get(`/v1/disks/${vmId}-d0`);
  }
}

test('kill -9 of the replica agent at random moments of every failover operation: before or after, never between', async () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 7070);
  const chains = Number(process.env['SECONDSITE_FAILOVER_CRASH_CHAINS'] ?? 6);
  const rng = new Rng(seed);
  const { lab, cleanup } = await twoHostLab('ss-failover-crash-');
  cleanups.push(cleanup);
  const a = lab.host('host-a');
  const b = lab.host('host-b');
  const outcomes = { before: 0, after: 0 };
  for (let c = 0; c < chains; c++) {
    const vmId = `k${c}`;
    const port = await freePort();
    const template: Template = { nics: [{ nicId: 'nic0', network: 'prod', ipv4: '127.0.0.1', port }] };
    await createDisks(lab, 'host-a', [{ diskId: `${vmId}-d0`, sizeBytes: 8 * MiB }]);
    await a.client.post('/v1/vms', {
      vmId,
      diskIds: [`${vmId}-d0`],
      nics: template.nics,
      guest: { recordsPerSec: 50 },
    });
    await a.client.post(`/v1/vms/${vmId}/start`);
    await enableReplication(lab, {
      vmId,
      diskIds: [`${vmId}-d0`],
      copyFrequencySeconds: 0,
      chunkBytes: 64 * 1024,
      // retention keeps the latest point and the newest (app-consistent) point of each hour: with an
      // app-consistent point every 5 s there are two points to change between
      appConsistentFrequencySeconds: 5,
    });
    await waitFor(
      `${vmId}: two points`,
      async () => (await replicaView(lab, vmId)).points.length >= 2,
      60_000,
    );
    for (const op of ops(template, c % 2 === 0 ? 'commit' : 'cancel')) {
      const where = `seed ${seed} chain ${c} ${op.name}`;
      if (op.name === 'failover') {
        // the primary VM still answers on its NIC: an unforced failover is refused
        await assert.rejects(op.run(lab, vmId), /still runs/, `${where}: refused while the primary runs`);
        await a.client.post(`/v1/vms/${vmId}/shutdown`, { timeoutMs: 10_000 });
      }
      const delayMs = rng.int(500);
      const attempt = op.run(lab, vmId).then(
        () => 'done',
        (e: unknown) => (e as Error).message,
      );
      await sleep(delayMs);
      await lab.kill('host-b');
      const result = await attempt;
      await lab.start('host-b');
      const state = (await failoverView(lab, vmId)).state;
      assert.ok(
        state === op.before || state === op.after,
        `${where} (killed after ${delayMs} ms, call: ${result}): state ${state} is neither ${op.before} nor ${op.after}`,
      );
      outcomes[state === op.after && op.before !== op.after ? 'after' : 'before']++;
      await checkState(lab, vmId, state, `${where} after restart`);
      await op.run(lab, vmId); // idempotent: completes it, or confirms it
      const final = (await failoverView(lab, vmId)).state;
      assert.equal(final, op.after, `${where}: re-issued`);
      await checkState(lab, vmId, final, `${where} completed`);
    }
    if (c % 2 === 1) {
      // after a cancel the primary continues at the raised epoch
      // at the epoch the replica kept (a failover re-issued after a crash may have raised it twice)
      const epoch = (await replicaView(lab, vmId)).epoch;
      assert.ok(epoch >= 1, `${vmId}: the failover raised the epoch`);
      await a.client.post(`/v1/relationships/${vmId}/resume`, { epoch });
      await a.client.post(`/v1/vms/${vmId}/start`);
      await waitFor(
        `${vmId}: a point at epoch ${epoch}`,
        async () => (await replicaView(lab, vmId)).latestPoint?.epoch === epoch,
      );
    } else {
      await b.client.post(`/v1/vms/${vmId}/power-off`);
    }
    await a.client.post(`/v1/vms/${vmId}/power-off`);
  }
  console.log(
    `failover crash cases: ${chains * 5} (${outcomes.before} found before the operation, ${outcomes.after} after)`,
  );
});

/**
 * `npm start` runs `secondsite lab up`: these run it as a user does (a real process) and walk the
 * README's "Protecting VMs" steps through the CLI against it: a policy, the cloud pairing, the network
 * mapping, `item enable --cloud prod --wait`; every VM becomes Protected, its recovery points advance
 * (`item show` twice), the lab's live status shows the items, a test failover boots a guest from its
 * replica; then the lab stops cleanly. And the same, lighter, for `lab up --single-server`: a pairing
 * within the one management server and one VM protected.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ControlClient } from '../../src/control-api/control-client.js';
import type { FailoverView } from '../../src/host/failover/failover-service.js';
import type { VmStatus } from '../../src/host/vm/vm-driver.js';
import type {
  ReplicatedItemDetail,
  ReplicatedItemView,
} from '../../src/protocol/vault-api/replicated-items.schema.js';
import { startLab, until, type RunningLab } from './lab-process.js';

/** `item show` twice: the second shows a newer last point than the first, with points kept. */
async function pointsAdvance(lab: RunningLab, vm: string): Promise<void> {
  const first = JSON.parse(
    await lab.cli('vault', 'item', 'show', vm, '--output', 'json'),
  ) as ReplicatedItemDetail;
  assert.equal(first.protectionState, 'Protected', `${vm}: ${JSON.stringify(first)}`);
  assert.ok(first.lastPointId && first.points.length > 0, `${vm} has recovery points`);
  await until(`a newer recovery point of ${vm}`, async () => {
    const again = JSON.parse(
      await lab.cli('vault', 'item', 'show', vm, '--output', 'json'),
    ) as ReplicatedItemDetail;
    return again.lastPointId !== first.lastPointId && again.replicationHealth === 'Normal'
      ? again
      : undefined;
  });
}

test('lab up, then the walkthrough: policy, pairing, network mapping, enable the cloud: every VM Protected', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ss-lab-'));
  let lab: RunningLab | null = null;
  try {
    lab = await startLab(dir, ['--writes-per-second', '50']);
    const l = lab;
    assert.equal(l.events[0]?.event, 'starting');
    assert.equal(l.ready.topology, 'two-servers');
    assert.match(l.ready.url, /^https:\/\/localhost:\d+$/);
    assert.deepEqual(l.ready.managementServers, ['vmm-site-a', 'vmm-site-b']);
    // the walkthrough the lab prints is the one this test types (the test with continuous copies)
    const steps = [
      ['vault', 'policy', 'create', 'gold', '--copy-frequency', '30s', '--retention-hours', '24'],
      ['vault', 'pairing', 'create', '--primary-cloud', 'prod', '--recovery-cloud', 'dr', '--policy', 'gold'],
      ['vault', 'network-mapping', 'create', '--source', 'net-prod', '--target', 'net-dr'],
      ['vault', 'item', 'enable', '--cloud', 'prod', '--wait'],
      ['vault', 'item', 'list'],
      ['vault', 'item', 'show', 'web'],
    ];
    assert.deepEqual(l.ready.walkthrough, steps);

    // ready means in the vault's inventory: both sites, their hosts, the VMs in cloud prod
    const status = await until('a status line', () =>
      Promise.resolve(l.events.find((e) => e.event === 'status')),
    );
    assert.deepEqual(
      status.controlPlane?.managementServers.map((m) => [m.name, m.connectionState]),
      [
        ['vmm-site-a', 'connected'],
        ['vmm-site-b', 'connected'],
      ],
    );
    assert.deepEqual(status.hosts?.map((h) => [h.hostId, h.managementServerName, h.connectionState]).sort(), [
      ['host-a1', 'vmm-site-a', 'connected'],
      ['host-a2', 'vmm-site-a', 'connected'],
      ['host-b1', 'vmm-site-b', 'connected'],
    ]);
    assert.deepEqual(
      status.vms?.map((v) => [v.vmId, v.cloudName, v.state]),
      [
        ['web', 'prod', 'running'],
        ['db', 'prod', 'running'],
      ],
    );
    assert.deepEqual(status.items, [], 'nothing is protected before the walkthrough');
    // the guests answer on their NICs' addresses on net-prod
    for (const vm of status.vms ?? []) {
      assert.match(vm.guestUrl ?? '', /^http:\/\/127\.1\.0\.1[01]:\d+\/state$/);
      const answer = await fetch(vm.guestUrl ?? '');
      assert.match(await answer.text(), /Seq/, `${vm.vmId}'s guest answers`);
    }

    // the walkthrough
    assert.match(
      await l.cli(
        'vault',
        'policy',
        'create',
        'gold',
        '--copy-frequency',
        'continuous',
        '--retention-hours',
        '24',
      ),
      /policy: +gold/,
    );
    assert.match(await l.cli(...(steps[1] as string[])), /prod/);
    assert.match(await l.cli(...(steps[2] as string[])), /net-prod -> .*net-dr/);
    const enabled = await l.cli(...(steps[3] as string[]), '--timeout-seconds', '150');
    assert.match(enabled, /web:[\s\S]*Succeeded/);
    assert.match(enabled, /db:[\s\S]*Succeeded/);
    const list = await l.cli(...(steps[4] as string[]));
    for (const vm of ['web', 'db']) assert.match(list, new RegExp(`${vm}\\b.*Protected`), list);
    const items = JSON.parse(
      await l.cli('vault', 'item', 'list', '--output', 'json'),
    ) as ReplicatedItemView[];
    assert.deepEqual(
      items.map((i) => [i.vmName, i.protectionState, i.primaryHostId, i.replicaHostId]).sort(),
      [
        ['db', 'Protected', 'host-a2', 'host-b1'],
        ['web', 'Protected', 'host-a1', 'host-b1'],
      ],
    );
    await pointsAdvance(l, 'web');
    await pointsAdvance(l, 'db');

    // the live status shows the replicated items, from the vault
    await until('the items in the live status', () => {
      const last = l.events.filter((e) => e.event === 'status').at(-1);
      return Promise.resolve(
        last?.items?.length === 2 &&
          last.items.every((i) => i.protectionState === 'Protected' && i.lastPointId)
          ? last
          : undefined,
      );
    });

    // the replica is real: a test failover on host-b1 boots web's guest from a point, its log validates
    const b1 = new ControlClient(join(dir, 'host-b1', 'agent.sock'));
    const tf = await b1.post<FailoverView>('/v1/replicas/web/test-failover', {});
    assert.equal(tf.state, 'test-failover');
    const testVm = await until('the test VM', async () => {
      const s = await b1.get<VmStatus>('/v1/vms/web-test');
      return s.state === 'running' && s.guest ? s : undefined;
    });
    assert.ok((testVm.guest?.bootSeq ?? 0) > 0, 'the guest log validates in a test failover');
    await b1.delete('/v1/replicas/web/test-failover');

    const code = await l.stop();
    lab = null;
    assert.equal(code, 0, l.stderr());
    assert.equal(l.events.at(-1)?.event, 'stopped');
  } finally {
    await lab?.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('lab up --single-server: one management server, prod paired with dr on it, a VM protected', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ss-lab1-'));
  let lab: RunningLab | null = null;
  try {
    lab = await startLab(dir, ['--single-server', '--writes-per-second', '0']);
    const l = lab;
    assert.equal(l.ready.topology, 'single-server');
    assert.deepEqual(l.ready.managementServers, ['vmm-single']);
    const clouds = await l.cli('vault', 'cloud', 'list');
    assert.match(clouds, /vmm-single\/prod/);
    assert.match(clouds, /vmm-single\/dr/);
    await l.cli(
      'vault',
      'policy',
      'create',
      'gold',
      '--copy-frequency',
      'continuous',
      '--retention-hours',
      '2',
    );
    await l.cli(
      'vault',
      'pairing',
      'create',
      '--primary-cloud',
      'prod',
      '--recovery-cloud',
      'dr',
      '--policy',
      'gold',
    );
    await l.cli('vault', 'network-mapping', 'create', '--source', 'net-prod', '--target', 'net-dr');
    const out = await l.cli(
      'vault',
      'item',
      'enable',
      '--management-server',
      'vmm-single',
      '--vm',
      'web',
      '--wait',
      '--timeout-seconds',
      '120',
    );
    assert.match(out, /Succeeded/);
    const item = JSON.parse(
      await l.cli('vault', 'item', 'show', 'web', '--output', 'json'),
    ) as ReplicatedItemDetail;
    assert.deepEqual(
      [item.protectionState, item.primaryHostId, item.replicaHostId],
      ['Protected', 'host-a1', 'host-b1'],
    );
    assert.equal(item.primaryManagementServerId, item.recoveryManagementServerId, 'one management server');
    await pointsAdvance(l, 'web');
    const code = await l.stop();
    lab = null;
    assert.equal(code, 0, l.stderr());
  } finally {
    await lab?.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

/**
 * Protecting a VM through the vault, end to end (docs/design/protection.md): a vault, two management
 * servers (one per site, each with its own database and site CA), one real host agent per site
 * enrolled into its manager, the fabric described on each manager, a running VM on the primary host.
 * The vault gets both inventories, a policy, a pairing and a network mapping; enabling replication
 * places the replica on the recovery host, authorizes the hosts across the sites (trust groups),
 * starts replication, and the item becomes Protected with recovery points that advance.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ControlClient } from '../../src/control-api/control-client.js';
import { HostLab } from '../../src/lab/host-lab.js';
import { ManagerServer, managerControlSocket } from '../../src/manager/manager-server.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { AuthorizationView } from '../../src/protocol/host-api/authorization.schema.js';
import type { CloudView, VmNetworkView, VmView } from '../../src/protocol/vault-api/fabric.schema.js';
import type { ReplicatedItemDetail } from '../../src/protocol/vault-api/replicated-items.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { startTestVault } from '../vault/vault-fixtures.js';

const pg = useTestPostgres();
const bin = new URL('../../bin/secondsite.mjs', import.meta.url).pathname;
const MiB = 1024 * 1024;

/** The CLI in a child process (asynchronously: the management servers answer it from this process). */
async function cli(...args: string[]): Promise<string> {
  try {
    return (await promisify(execFile)(process.execPath, [bin, ...args], { encoding: 'utf8' })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string };
    assert.fail(`secondsite ${args.join(' ')} failed: ${err.stderr ?? ''}${err.stdout ?? ''}`);
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`${what} did not happen in ${timeoutMs} ms (last error: ${String(last)})`);
}

test('enable replication through the vault: placement, cross-site trust, Protected with advancing points', async (t) => {
  const vault = await startTestVault(pg, t);
  const dir = await mkdtemp(join(tmpdir(), 'ss-protect-'));
  t.after(() => rm(dir, { recursive: true, force: true }));

  // two sites: a management server each (own database, site CA, enrolment listener)
  const managers: Record<
    'a' | 'b',
    { server: ManagerServer; dataDir: string; control: ControlClient; id: string }
  > = {} as never;
  for (const site of ['a', 'b'] as const) {
    const { dataDir } = await vault.register(`vmm-site-${site}`);
    const databaseUrl = await pg.freshDatabase();
    const server = await ManagerServer.start({
      dataDir,
      databaseUrl,
      log: silentLogger,
      enrolListen: { host: '127.0.0.1', port: 0 },
      hostPollIntervalMs: 500,
      statusIntervalMs: 500,
    });
    t.after(async () => {
      await server.stop();
      await pg.dropDatabase(databaseUrl);
    });
    managers[site] = {
      server,
      dataDir,
      control: new ControlClient(managerControlSocket(dataDir)),
      id: server.identity.registration.managementServerId,
    };
  }

  // one host agent per site, enrolled into its manager (then restarted with its new identity)
  const lab = await HostLab.create(join(dir, 'hosts'), [{ hostId: 'host-a1' }, { hostId: 'host-b1' }]);
  t.after(() => lab.stop());
  for (const [site, hostId] of [
    ['a', 'host-a1'],
    ['b', 'host-b1'],
  ] as const) {
    const key = join(dir, `${hostId}.key.json`);
    await cli('manager', 'host', 'enroll-key', '--data-dir', managers[site].dataDir, '--out', key);
    await cli('host', 'enroll', '--state-dir', lab.host(hostId).stateDir, '--key', key);
    await lab.stopHost(hostId);
    await lab.start(hostId);
  }

  // the fabric of each site: host group, cloud, VM network
  const fabric = async (site: 'a' | 'b', hostId: string, cloud: string, network: string, cidr: string) => {
    const c = managers[site].control;
    await c.post('/v1/host-groups', { name: `hg-${cloud}` });
    await c.call('PUT', `/v1/hosts/${hostId}/host-group`, { hostGroup: `hg-${cloud}` });
    await c.post('/v1/clouds', { name: cloud, hostGroups: [`hg-${cloud}`] });
    await c.post('/v1/vm-networks', { name: network, clouds: [cloud], subnets: [{ cidr }] });
  };
  await fabric('a', 'host-a1', 'prod', 'net-prod', '127.1.0.0/24');
  await fabric('b', 'host-b1', 'dr', 'net-dr', '127.2.0.0/24');

  // a running VM on the primary host, its NIC on net-prod
  const a1 = lab.host('host-a1');
  await a1.client.post('/v1/disks', { diskId: 'web-d0', sizeBytes: 8 * MiB });
  await a1.client.post('/v1/vms', {
    vmId: 'web',
    name: 'web',
    diskIds: ['web-d0'],
    nics: [{ nicId: 'nic0', network: 'net-prod', ipv4: '127.1.0.10', port: 0 }],
    guest: { recordsPerSec: 50 },
  });
  await a1.client.post('/v1/vms/web/start', {});

  // the vault receives both inventories
  const admin = vault.admin;
  const vm = await until('the VM in the vault', async () => {
    const vms = (await admin.get<{ vms: VmView[] }>(`/v1/vms?managementServer=${managers.a.id}`)).vms;
    return vms.find((v) => v.vmId === 'web' && v.cloudId !== null);
  });
  const cloudOf = async (site: 'a' | 'b', name: string) =>
    until(`cloud ${name}`, async () =>
      (
        await admin.get<{ clouds: CloudView[] }>(`/v1/clouds?managementServer=${managers[site].id}`)
      ).clouds.find((c) => c.name === name),
    );
  const networkOf = async (site: 'a' | 'b', name: string) =>
    until(`network ${name}`, async () =>
      (
        await admin.get<{ vmNetworks: VmNetworkView[] }>(
          `/v1/vm-networks?managementServer=${managers[site].id}`,
        )
      ).vmNetworks.find((n) => n.name === name),
    );
  const prod = await cloudOf('a', 'prod');
  const dr = await cloudOf('b', 'dr');
  assert.equal(vm.cloudId, prod.cloudId);

  // policy, pairing, network mapping
  await admin.post('/v1/policies', { name: 'continuous', copyFrequencySeconds: 0, retentionHours: 2 });
  await admin.post('/v1/cloud-pairings', {
    primaryManagementServerId: managers.a.id,
    primaryCloudId: prod.cloudId,
    recoveryManagementServerId: managers.b.id,
    recoveryCloudId: dr.cloudId,
    policy: 'continuous',
  });
  await admin.post('/v1/network-mappings', {
    sourceManagementServerId: managers.a.id,
    sourceVmNetworkId: (await networkOf('a', 'net-prod')).vmNetworkId,
    targetManagementServerId: managers.b.id,
    targetVmNetworkId: (await networkOf('b', 'net-dr')).vmNetworkId,
  });

  // enable replication through the CLI, waiting for the job
  const out = await cli(
    'vault',
    'item',
    'enable',
    '--vault-dir',
    vault.dataDir,
    '--management-server',
    'vmm-site-a',
    '--vm',
    'web',
    '--wait',
    '--timeout-seconds',
    '120',
  );
  assert.match(out, /Succeeded/);
  const item = await admin.get<ReplicatedItemDetail>('/v1/replicated-items/web');
  assert.equal(item.protectionState, 'Protected');
  assert.equal(item.replicaHostId, 'host-b1');
  assert.equal(item.storageLocation, 'default');
  assert.ok(item.lastPointId, 'a last recovery point');

  // the hosts trust each other through their sites' CAs, as the pairing says
  const b1Auth = await lab.host('host-b1').client.get<AuthorizationView>('/v1/authorization');
  assert.deepEqual(
    b1Auth.entries.filter((e) => e.source === 'managed').map((e) => [e.primaryHostId, e.trustGroup]),
    [['host-a1', managers.a.id]],
  );
  // the replica keeps points, and they advance while the VM runs
  const first = await until('points on the item', async () => {
    const i = await admin.get<ReplicatedItemDetail>(`/v1/replicated-items/${item.replicatedItemId}`);
    return i.points.length > 0 ? i : undefined;
  });
  await until('a newer point', async () => {
    const i = await admin.get<ReplicatedItemDetail>(`/v1/replicated-items/${item.replicatedItemId}`);
    return i.lastPointId !== first.lastPointId && i.replicationHealth === 'Normal' ? i : undefined;
  });

  // enabling again is harmless: same item, no new job
  const again = await admin.post<{ items: Array<{ replicatedItemId: string; jobId: string | null }> }>(
    '/v1/replicated-items',
    { managementServerId: managers.a.id, vmIds: ['web'] },
  );
  assert.equal(again.items[0]?.replicatedItemId, item.replicatedItemId);
  assert.equal(again.items[0]?.jobId, item.enableJobId);
});

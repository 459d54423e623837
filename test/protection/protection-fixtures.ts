/**
 * Two sites for protection tests (docs/design/protection.md): a management server per site (own
 * database, site CA, enrolment listener), one real host agent per site enrolled into its manager
 * through the CLI, the fabric of each site (host group, cloud, VM network), a running VM `web` on the
 * primary host, and in the vault: both inventories, a policy `continuous`, a pairing prod -> dr and a
 * network mapping. The vault is given: in-process (startTestVault) or any URL (e.g. a load balancer in
 * front of several `vault serve` processes).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import { ControlClient } from '../../src/control-api/control-client.js';
import { HostLab } from '../../src/lab/host-lab.js';
import {
  ManagerServer,
  managerControlSocket,
  type ManagerServerOptions,
} from '../../src/manager/manager-server.js';
import { registerProvider } from '../../src/manager/provider/provider-registration.js';
import type { VaultClient } from '../../src/manager/provider/vault-client.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { CloudView, VmNetworkView, VmView } from '../../src/protocol/vault-api/fabric.schema.js';
import type { PairingView } from '../../src/protocol/vault-api/pairings.schema.js';
import type { TestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { until } from '../../src/testing/wait/until.js';

const bin = new URL('../../bin/secondsite.mjs', import.meta.url).pathname;
export const MiB = 1024 * 1024;

/** The CLI in a child process (asynchronously: the management servers answer it from this process). */
export async function cli(...args: string[]): Promise<string> {
  try {
    return (await promisify(execFile)(process.execPath, [bin, ...args], { encoding: 'utf8' })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string };
    assert.fail(`secondsite ${args.join(' ')} failed: ${err.stderr ?? ''}${err.stdout ?? ''}`);
  }
}

export { until };

export interface VaultAccess {
  readonly admin: VaultClient;
  /** A fresh registration key file. */
  keyFile(): Promise<string>;
  /** The vault URL management servers use (default: the key's). */
  readonly providerUrl?: string;
}

export interface Site {
  readonly server: ManagerServer;
  readonly dataDir: string;
  readonly control: ControlClient;
  readonly id: string;
  readonly databaseUrl: string;
}

export interface TwoSites {
  readonly managers: Record<'a' | 'b', Site>;
  readonly lab: HostLab;
  readonly pairing: PairingView;
  readonly vm: VmView;
}

export async function startTwoSites(
  pg: TestPostgres,
  t: Pick<TestContext, 'after'>,
  vault: VaultAccess,
  managerOptions: Partial<
    Pick<ManagerServerOptions, 'certificateCheckIntervalMs' | 'certificateRemainingFraction'>
  > = {},
): Promise<TwoSites> {
  const dir = await mkdtemp(join(tmpdir(), 'ss-protect-'));
  // undone last first: the agents and managers stop before their folders are removed
  const cleanups: Array<() => Promise<void>> = [];
  t.after(async () => {
    for (const undo of cleanups.reverse()) await undo();
  });
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const managers = {} as Record<'a' | 'b', Site>;
  for (const site of ['a', 'b'] as const) {
    const dataDir = join(dir, `manager-${site}`);
    await registerProvider({
      dataDir,
      keyFile: await vault.keyFile(),
      managementServerName: `vmm-site-${site}`,
      nodeName: 'node-1',
      ...(vault.providerUrl !== undefined ? { vaultUrl: vault.providerUrl } : {}),
    });
    const databaseUrl = await pg.freshDatabase();
    const server = await ManagerServer.start({
      dataDir,
      databaseUrl,
      log: silentLogger,
      enrolListen: { host: '127.0.0.1', port: 0 },
      hostPollIntervalMs: 500,
      statusIntervalMs: 500,
      authorizationReconcileIntervalMs: 500,
      ...managerOptions,
    });
    cleanups.push(async () => {
      await server.stop();
      await pg.dropDatabase(databaseUrl);
    });
    managers[site] = {
      server,
      dataDir,
      databaseUrl,
      control: new ControlClient(managerControlSocket(dataDir)),
      id: server.identity.registration.managementServerId,
    };
  }

  // one host agent per site, enrolled into its manager (then restarted with its new identity)
  const lab = await HostLab.create(join(dir, 'hosts'), [{ hostId: 'host-a1' }, { hostId: 'host-b1' }]);
  cleanups.push(() => lab.stop());
  await Promise.all(
    (
      [
        ['a', 'host-a1'],
        ['b', 'host-b1'],
      ] as const
    ).map(async ([site, hostId]) => {
      const key = join(dir, `${hostId}.key.json`);
      await cli('manager', 'host', 'enroll-key', '--data-dir', managers[site].dataDir, '--out', key);
      await cli('host', 'enroll', '--state-dir', lab.host(hostId).stateDir, '--key', key);
      await lab.stopHost(hostId);
      await lab.start(hostId);
    }),
  );

  // the fabric of each site: host group, cloud, VM network
  const fabric = async (site: 'a' | 'b', hostId: string, cloud: string, network: string, cidr: string) => {
    const c = managers[site].control;
    await c.post('/v1/host-groups', { name: `hg-${cloud}` });
    await c.call('PUT', `/v1/hosts/${hostId}/host-group`, { hostGroup: `hg-${cloud}` });
    await c.post('/v1/clouds', { name: cloud, hostGroups: [`hg-${cloud}`] });
    await c.post('/v1/vm-networks', { name: network, clouds: [cloud], subnets: [{ cidr }] });
  };
  await Promise.all([
    fabric('a', 'host-a1', 'prod', 'net-prod', '127.1.0.0/24'),
    fabric('b', 'host-b1', 'dr', 'net-dr', '127.2.0.0/24'),
  ]);

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
  const pairing = await admin.post<PairingView>('/v1/cloud-pairings', {
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
  return { managers, lab, pairing, vm };
}

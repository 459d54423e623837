/**
 * End to end: a management server registered with a test vault (both in this process, each on its
 * own PostgreSQL database) describes its fabric through the CLI, and the vault lists it: the
 * inventory goes after a heartbeat whose answer shows an older version, and on `manager inventory
 * sync` and the vault's inventory-refresh job. A vault that cannot be reached leaves the error logged and the send for the next heartbeat.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { InventorySync } from '../../src/manager/fabric/inventory-sync.js';
import { InventoryService } from '../../src/manager/fabric/inventory.service.js';
import { ManagerServer } from '../../src/manager/manager-server.js';
import { ProviderSession } from '../../src/manager/provider/provider-session.js';
import { VaultClient } from '../../src/manager/provider/vault-client.js';
import { silentLogger, type Logger } from '../../src/observability/logger.js';
import type { CloudView, VmNetworkView, VmView } from '../../src/protocol/vault-api/fabric.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { startTestVault } from '../vault/vault-fixtures.js';
import { hostReport } from './fabric-fixtures.js';
import { until } from '../../src/testing/wait/until.js';

const pg = useTestPostgres();

test('a registered manager creates a cloud and a VM network; the vault lists them', async (t) => {
  const vault = await startTestVault(pg, t, { heartbeatIntervalSeconds: 1 });
  const { identity, dataDir } = await vault.register('vmm-east');
  const managerDb = await pg.freshDatabase();
  const manager = await ManagerServer.start({
    dataDir,
    databaseUrl: managerDb,
    log: silentLogger,
    enrolListen: { host: '127.0.0.1', port: 0 },
    hostPollIntervalMs: 3_600_000,
  });
  t.after(async () => {
    await manager.stop();
    await pg.dropDatabase(managerDb);
  });
  const cli = async (...args: string[]): Promise<string> => {
    let out = '';
    let err = '';
    const code = await main(['manager', ...args, '--data-dir', dataDir], {
      out: (s) => (out += s),
      err: (s) => (err += s),
    });
    assert.equal(code, 0, `manager ${args.join(' ')}: ${err}`);
    return out;
  };
  const msId = identity.registration.managementServerId;
  const vaultHas = async <T>(
    path: string,
    key: string,
    pick: (xs: T[]) => T | undefined,
  ): Promise<T | undefined> => {
    const r = await vault.admin.get<Record<string, T[]>>(`${path}?managementServer=${msId}`);
    return pick(r[key] ?? []);
  };

  // a host as enrolment and the poller make it, in a host group under a cloud
  await cli('host-group', 'create', 'east');
  await cli('host-group', 'create', 'east-rack1', '--parent', 'east');
  await manager.db.query(
    `INSERT INTO hosts (host_id, host_group_id, replication_address, replication_port, cert_serial, cert_not_after,
                        connection_state, host_inventory)
     VALUES ('host-a', (SELECT host_group_id FROM host_groups WHERE name = 'east-rack1'), '127.0.0.1', 8084, '01',
             now() + interval '1 year', 'connected', $1)`,
    [hostReport('host-a', [{ vmId: 'vm1', networks: ['prod'] }])],
  );
  await cli('cloud', 'create', 'gold', '--host-group', 'east', '--max-vms', '20', '--memory', '64GiB');
  await cli(
    'vm-network',
    'create',
    'prod',
    '--cloud',
    'gold',
    '--subnet',
    '10.1.0.0/24',
    '--gateway',
    '10.1.0.1',
    '--ip-pool',
    '10.1.0.100-10.1.0.199',
  );

  // sent after a heartbeat (every second here)
  const gold = await until('the vault to list cloud gold with its VM', () =>
    vaultHas<CloudView>('/v1/clouds', 'clouds', (cs) => cs.find((c) => c.name === 'gold' && c.vmCount === 1)),
  );
  assert.deepEqual(gold.capacity, { vmCount: 20, memoryBytes: 64 * 1024 ** 3, storageBytes: null });
  assert.deepEqual(gold.hostIds, ['host-a']);
  const prod = await until('the vault to list VM network prod', () =>
    vaultHas<VmNetworkView>('/v1/vm-networks', 'vmNetworks', (ns) => ns.find((n) => n.name === 'prod')),
  );
  assert.deepEqual(prod.cloudIds, [gold.cloudId]);
  assert.deepEqual(
    prod.subnets.map((s) => [s.cidr, s.gateway, s.ipPools.map((p) => `${p.rangeStart}-${p.rangeEnd}`)]),
    [['10.1.0.0/24', '10.1.0.1', ['10.1.0.100-10.1.0.199']]],
  );
  const vm1 = await vaultHas<VmView>('/v1/vms', 'vms', (vs) => vs.find((v) => v.vmId === 'vm1'));
  assert.ok(vm1, 'the vault lists vm1');
  assert.equal(vm1.cloudId, gold.cloudId);
  assert.deepEqual(vm1.nics[0]?.vmNetworkId, prod.vmNetworkId);

  // on request: the vault already holds this version
  const inv = JSON.parse(await cli('inventory', '--output', 'json')) as { inventoryVersion: number };
  const synced = JSON.parse(await cli('inventory', 'sync', '--output', 'json')) as {
    inventoryVersion: number;
    applied: boolean;
  };
  assert.deepEqual(synced, { inventoryVersion: inv.inventoryVersion, applied: false });
  assert.equal(
    await cli('inventory', 'status'),
    `inventory version ${inv.inventoryVersion}: the vault holds it`,
  );

  // a change reaches the vault at the next heartbeat
  await cli('host-group', 'create', 'west');
  await cli('cloud', 'create', 'silver', '--host-group', 'west');
  await until('the vault to list cloud silver', () =>
    vaultHas<CloudView>('/v1/clouds', 'clouds', (cs) => cs.find((c) => c.name === 'silver')),
  );
});

test("the vault's inventory-refresh job makes the manager send its inventory (no heartbeat in between)", async (t) => {
  const vault = await startTestVault(pg, t, { heartbeatIntervalSeconds: 600 });
  const { identity, dataDir } = await vault.register('vmm-north');
  const managerDb = await pg.freshDatabase();
  const manager = await ManagerServer.start({
    dataDir,
    databaseUrl: managerDb,
    log: silentLogger,
    enrolListen: { host: '127.0.0.1', port: 0 },
    hostPollIntervalMs: 3_600_000,
  });
  t.after(async () => {
    await manager.stop();
    await pg.dropDatabase(managerDb);
  });
  const msId = identity.registration.managementServerId;
  await until('the first heartbeat', () =>
    Promise.resolve(manager.session.heartbeatsSent > 0 ? true : undefined),
  );
  const code = await main(['manager', 'host-group', 'create', 'north', '--data-dir', dataDir], {
    out: () => {},
    err: () => {},
  });
  assert.equal(code, 0);
  await main(['manager', 'cloud', 'create', 'arctic', '--host-group', 'north', '--data-dir', dataDir], {
    out: () => {},
    err: () => {},
  });
  const started = await vault.admin.post<{ jobId: string }>(`/v1/management-servers/${msId}/refresh`, {});
  const job = await until('the refresh job to finish', async () => {
    const j = await vault.admin.get<{ state: string }>(`/v1/jobs/${started.jobId}`);
    return j.state === 'Succeeded' || j.state === 'Failed' ? j : undefined;
  });
  assert.equal(job.state, 'Succeeded', JSON.stringify(job));
  const clouds = await vault.admin.get<{ clouds: CloudView[] }>(`/v1/clouds?managementServer=${msId}`);
  assert.deepEqual(
    clouds.clouds.map((c) => c.name),
    ['arctic'],
  );
});

test('a vault that cannot be reached: the send fails, is logged, and waits for the next heartbeat', async (t) => {
  const vault = await startTestVault(pg, t);
  const { identity, dataDir } = await vault.register('vmm-west');
  const url = await pg.freshDatabase(t);
  const { openDatabase } = await import('../../src/persistence/database.js');
  const db = await openDatabase({ databaseUrl: url, dataDir, component: 'manager' });
  t.after(() => db.close());
  const warnings: string[] = [];
  const log: Logger = {
    debug: () => {},
    info: () => {},
    warn: (m) => void warnings.push(m),
    error: () => {},
    child: () => log,
  };
  const inventory = new InventoryService(db, dataDir, 'vmm-west', silentLogger);
  const unreachable = new VaultClient({ url: 'https://127.0.0.1:1', caCertPem: identity.vaultCaCertPem });
  const sync = new InventorySync(inventory, unreachable, identity.registration.managementServerId, log);
  await sync.afterHeartbeat(0); // never throws
  assert.match(sync.lastError ?? '', /ECONNREFUSED|connect/);
  assert.equal(warnings.length, 1);
  await sync.afterHeartbeat(0);
  assert.equal(warnings.length, 1, 'the same error is logged once');
  await assert.rejects(sync.sendNow());
  // the same document through the real provider client is accepted
  const { providerClient } = await import('../../src/manager/provider/provider-registration.js');
  const ok = new InventorySync(
    inventory,
    providerClient(identity),
    identity.registration.managementServerId,
    silentLogger,
  );
  await ok.afterHeartbeat(0);
  assert.equal(ok.lastError, null);
  assert.equal(ok.vaultInventoryVersion, await inventory.currentVersion());
  await ok.afterHeartbeat(await inventory.currentVersion());
  assert.equal(ok.sendsDone, 1, 'nothing is sent when the vault holds the version');
});

test('a slow inventory send does not delay heartbeats; one runs at a time', async (t) => {
  const vault = await startTestVault(pg, t, { heartbeatIntervalSeconds: 1 });
  const { identity, client } = await vault.register('vmm-slow');
  let release = (): void => {};
  const gate = new Promise<void>((r) => (release = r));
  let runs = 0;
  const session = new ProviderSession(
    client,
    identity.registration.managementServerId,
    1,
    'test',
    silentLogger,
    async () => {
      runs++;
      await gate;
    },
  );
  session.start();
  t.after(() => {
    release();
    return session.stop();
  });
  await until('three heartbeats while the first send hangs', () =>
    Promise.resolve(session.heartbeatsSent >= 3 ? true : undefined),
  );
  assert.equal(runs, 1);
  release();
  await until('a send after a later heartbeat', () => Promise.resolve(runs >= 2 ? true : undefined));
});

/**
 * The fabric inventory through the vault's API against a real PostgreSQL (docs/design/vault.md
 * section 6): a provider pushes a synthetic inventory through its real client; versions (newer
 * applies, older or equal is ignored, the heartbeat answers the stored one); another site's provider
 * and users are refused; inconsistent documents are refused whole with messages naming the problem;
 * the read routes (filters, paging); and 100 management servers x 120 VMs stay quick.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { VaultClient } from '../../src/manager/provider/vault-client.js';
import type {
  CloudView,
  HostView,
  StorageClassificationView,
  VmNetworkView,
  VmView,
} from '../../src/protocol/vault-api/fabric.schema.js';
import type { Inventory } from '../../src/protocol/vault-api/inventory.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { InventoryService } from '../../src/vault/fabric/inventory.service.js';
import { syntheticInventory } from './fabric-fixtures.js';
import { startTestVault, type TestVault } from './vault-fixtures.js';

const server = useTestPostgres();

async function vaultFor(t: TestContext): Promise<TestVault> {
  const databaseUrl = await server.freshDatabase();
  const v = await startTestVault(server, t, { databaseUrl });
  t.after(() => server.dropDatabase(databaseUrl));
  return v;
}

const put = (client: VaultClient, msId: string, inv: unknown) =>
  client.raw('PUT', `/v1/management-servers/${msId}/inventory`, inv);

async function refusal(
  client: VaultClient,
  msId: string,
  inv: unknown,
): Promise<{ status: number; code: string; message: string }> {
  const res = await put(client, msId, inv);
  assert.ok(res.status >= 400 && res.status < 500, `${res.status} ${res.text}`);
  const { error } = JSON.parse(res.text) as { error: { code: string; message: string } };
  return { status: res.status, code: error.code, message: error.message };
}

test('a provider sends its inventory: versions, scope, and what the read routes show', async (t) => {
  const v = await vaultFor(t);
  const east = await v.register('vmm-east');
  const west = await v.register('vmm-west');
  const eastId = east.identity.registration.managementServerId;
  const westId = west.identity.registration.managementServerId;

  const v1 = syntheticInventory({ version: 5, clouds: ['prod', 'test'], hostsPerCloud: 2, vmsPerHost: 3 });
  assert.deepEqual(await east.client.call('PUT', `/v1/management-servers/${eastId}/inventory`, v1), {
    inventoryVersion: 5,
    applied: true,
  });
  const hb = await east.client.post<{ inventoryVersion: number }>(
    `/v1/management-servers/${eastId}/heartbeat`,
    { providerVersion: 'test' },
  );
  assert.equal(hb.inventoryVersion, 5);
  // equal and older versions are ignored, not errors
  const changed = syntheticInventory({ version: 5, clouds: ['other'] });
  assert.deepEqual(JSON.parse((await put(east.client, eastId, changed)).text), {
    inventoryVersion: 5,
    applied: false,
  });
  assert.deepEqual(JSON.parse((await put(east.client, eastId, { ...changed, inventoryVersion: 4 })).text), {
    inventoryVersion: 5,
    applied: false,
  });
  // another site's provider, and users (even the Owner), may not send this server's inventory
  const foreign = await refusal(west.client, eastId, { ...v1, inventoryVersion: 9 });
  assert.equal(foreign.status, 403);
  assert.match(foreign.message, /may act only on its own management server/);
  assert.equal((await refusal(v.admin, eastId, { ...v1, inventoryVersion: 9 })).status, 403);

  await west.client.call(
    'PUT',
    `/v1/management-servers/${westId}/inventory`,
    syntheticInventory({ version: 1, clouds: ['dr'], classifications: ['dr-gold', 'dr-silver'] }),
  );

  // clouds: hosts, capacity, VM count, owner, not paired
  const reader = await v.userClient('Reader');
  const { clouds } = await reader.get<{ clouds: CloudView[] }>('/v1/clouds');
  assert.deepEqual(clouds.map((c) => `${c.managementServerName}/${c.name}`).sort(), [
    'vmm-east/prod',
    'vmm-east/test',
    'vmm-west/dr',
  ]);
  const prod = clouds.find((c) => c.name === 'prod') as CloudView;
  assert.deepEqual(prod.hostIds, ['host-prod-0', 'host-prod-1']);
  assert.deepEqual(prod.hostGroupIds, ['hg-prod']);
  assert.equal(prod.vmCount, 6);
  assert.deepEqual(prod.capacity, { vmCount: 100, memoryBytes: null, storageBytes: 2 ** 40 });
  assert.equal(prod.state, 'present');
  assert.equal(prod.pairing, null);
  assert.deepEqual(await reader.get(`/v1/management-servers/${eastId}/clouds/cloud-prod`), prod);
  const none = await reader.raw('GET', `/v1/management-servers/${westId}/clouds/cloud-prod`);
  assert.equal(none.status, 404);
  assert.match(none.text, /no cloud cloud-prod on management server/);

  // filters: by management server id or name, by cloud name
  const byName = await reader.get<{ clouds: CloudView[] }>('/v1/clouds?managementServer=vmm-west');
  assert.deepEqual(
    byName.clouds.map((c) => c.cloudId),
    ['cloud-dr'],
  );
  const named = await reader.get<{ clouds: CloudView[] }>(`/v1/clouds?name=test&managementServer=${eastId}`);
  assert.deepEqual(
    named.clouds.map((c) => c.cloudId),
    ['cloud-test'],
  );

  // paging: limit and the next cursor walk every VM once
  const seen: string[] = [];
  let after: string | null = '';
  let pages = 0;
  while (after !== null) {
    const page: { vms: VmView[]; next: string | null } = await reader.get(
      `/v1/vms?limit=5${after ? `&after=${encodeURIComponent(after)}` : ''}`,
    );
    seen.push(...page.vms.map((x) => `${x.managementServerName}/${x.vmId}`));
    after = page.next;
    pages++;
  }
  assert.equal(seen.length, 12 + 4);
  assert.equal(new Set(seen).size, seen.length);
  assert.equal(pages, 4);
  const badLimit = await reader.raw('GET', '/v1/vms?limit=0');
  assert.equal(badLimit.status, 400);

  const inTest = await reader.get<{ vms: VmView[] }>(`/v1/vms?managementServer=${eastId}&cloud=cloud-test`);
  assert.equal(inTest.vms.length, 6);
  assert.ok(inTest.vms.every((x) => x.cloudId === 'cloud-test' && x.cloudName === 'test'));
  assert.deepEqual(inTest.vms[0]?.disks, [{ diskId: 'd0', sizeBytes: 2 ** 30 }]);

  const hosts = await reader.get<{ hosts: HostView[] }>(
    '/v1/hosts?managementServer=vmm-east&cloud=cloud-prod',
  );
  assert.deepEqual(
    hosts.hosts.map((h) => [h.hostId, h.hostGroupName, h.cloudIds]),
    [
      ['host-prod-0', 'prod-hosts', ['cloud-prod']],
      ['host-prod-1', 'prod-hosts', ['cloud-prod']],
    ],
  );
  assert.equal(hosts.hosts[0]?.storageLocations.length, 2);

  const nets = await reader.get<{ vmNetworks: VmNetworkView[] }>('/v1/vm-networks?managementServer=vmm-east');
  assert.deepEqual(
    nets.vmNetworks.map((n) => [n.name, n.cloudIds, n.subnets[0]?.ipPools[0]?.ipPoolId, n.mappedTo]),
    [
      ['prod-net', ['cloud-prod'], 'pool-prod', null],
      ['test-net', ['cloud-test'], 'pool-test', null],
    ],
  );

  const classes = await reader.get<{ storageClassifications: StorageClassificationView[] }>(
    '/v1/storage-classifications?managementServer=vmm-east',
  );
  assert.deepEqual(
    classes.storageClassifications.map((c) => [c.name, c.locationCount, c.capacityBytes, c.freeBytes]),
    [
      ['gold', 4, 4000, 2400],
      ['silver', 4, 20000, 16000],
    ],
  );

  // a newer inventory replaces the fabric: a cloud, its hosts and VMs are gone
  await east.client.call(
    'PUT',
    `/v1/management-servers/${eastId}/inventory`,
    syntheticInventory({ version: 6, clouds: ['prod'], hostsPerCloud: 1, vmsPerHost: 1 }),
  );
  const after6 = await reader.get<{ clouds: CloudView[] }>(`/v1/clouds?managementServer=${eastId}`);
  assert.deepEqual(
    after6.clouds.map((c) => [c.name, c.hostIds, c.vmCount]),
    [['prod', ['host-prod-0'], 1]],
  );
  assert.equal((await reader.get<{ vms: VmView[] }>(`/v1/vms?managementServer=${eastId}`)).vms.length, 1);
});

test('an inconsistent inventory is refused whole, with the problems named', async (t) => {
  const v = await vaultFor(t);
  const east = await v.register('vmm-east');
  const msId = east.identity.registration.managementServerId;
  const good = syntheticInventory({ version: 2, clouds: ['prod'] });
  await east.client.call('PUT', `/v1/management-servers/${msId}/inventory`, good);

  const broken = (edit: (inv: Inventory) => void): Inventory => {
    const inv = structuredClone(good);
    inv.inventoryVersion = 3;
    edit(inv);
    return inv;
  };
  const cases: Array<[string, Inventory, RegExp]> = [
    [
      'a VM on an unknown host',
      broken((inv) => {
        (inv.vms[0] as { hostId: string }).hostId = 'host-nowhere';
      }),
      /vms\[0\] \(vm-prod-0-0\): host host-nowhere is not in the inventory's hosts/,
    ],
    [
      'a cloud naming an unknown host group',
      broken((inv) => {
        inv.clouds[0]?.hostGroupIds.push('hg-ghost');
      }),
      /clouds\[0\] \(cloud-prod\): host group hg-ghost is not in the inventory's hostGroups/,
    ],
    [
      'duplicate VM ids',
      broken((inv) => {
        inv.vms.push({ ...(inv.vms[0] as Inventory['vms'][number]) });
      }),
      /VM \(host\/id\) host-prod-0\/vm-prod-0-0 appears more than once/,
    ],
    [
      'duplicate cloud names',
      broken((inv) => {
        inv.clouds.push({ ...(inv.clouds[0] as Inventory['clouds'][number]), cloudId: 'cloud-two' });
      }),
      /cloud name prod appears more than once/,
    ],
    [
      'a NIC on an unknown network',
      broken((inv) => {
        const nic = inv.vms[1]?.nics[0] as { vmNetworkId: string | null };
        nic.vmNetworkId = 'net-ghost';
      }),
      /NIC n0 is on VM network net-ghost, which is not in the inventory's vmNetworks/,
    ],
    [
      'a network naming an unknown cloud',
      broken((inv) => {
        inv.vmNetworks[0]?.cloudIds.push('cloud-ghost');
      }),
      /vmNetworks\[0\] \(net-prod\): cloud cloud-ghost is not in the inventory's clouds/,
    ],
    [
      'an IP pool outside its subnet',
      broken((inv) => {
        const pool = inv.vmNetworks[0]?.subnets[0]?.ipPools[0] as { rangeEnd: string };
        pool.rangeEnd = '192.168.0.1';
      }),
      /IP pool pool-prod \(10\.1\.1\.0-192\.168\.0\.1\) is outside subnet 10\.1\.0\.0\/16/,
    ],
    [
      'host groups in a cycle',
      broken((inv) => {
        (inv.hostGroups[0] as { parentHostGroupId: string | null }).parentHostGroupId = 'hg-prod';
      }),
      /host groups nest in a cycle/,
    ],
  ];
  for (const [label, inv, pattern] of cases) {
    const r = await refusal(east.client, msId, inv);
    assert.equal(r.code, 'SECONDSITE_ERR_INVALID_ARGUMENT', label);
    assert.match(r.message, /^the inventory is not consistent, nothing was stored: /, label);
    assert.match(r.message, pattern, label);
  }
  // the schema refuses malformed objects before the consistency check
  const schema = await refusal(east.client, msId, {
    ...good,
    inventoryVersion: 3,
    hosts: [{ hostId: 'X Y' }],
  });
  assert.match(schema.message, /hosts\.0\.hostId: a host id is a lower-case DNS label/);
  // nothing was stored: the version is the good one's
  const hb = await east.client.post<{ inventoryVersion: number }>(
    `/v1/management-servers/${msId}/heartbeat`,
    {
      providerVersion: 'test',
    },
  );
  assert.equal(hb.inventoryVersion, 2);
  // a VM id is its host's: two hosts may hold the same one (a failed-over VM and its source)
  const twins = broken((inv) => {
    (inv.vms[2] as { vmId: string }).vmId = inv.vms[0]?.vmId ?? '';
  });
  assert.notEqual(twins.vms[2]?.hostId, twins.vms[0]?.hostId);
  assert.deepEqual(await east.client.call('PUT', `/v1/management-servers/${msId}/inventory`, twins), {
    inventoryVersion: 3,
    applied: true,
  });
  const same = await east.client
    .get<{ vms: VmView[] }>(`/v1/vms?name=${twins.vms[2]?.name ?? ''}`)
    .catch(() => null);
  assert.equal(same, null, 'a provider reads no fabric');
  const twinsListed = await v.admin.get<{ vms: VmView[] }>(`/v1/vms?managementServer=${msId}`);
  assert.deepEqual(
    twinsListed.vms.filter((x) => x.vmId === 'vm-prod-0-0').map((x) => x.hostId),
    ['host-prod-0', 'host-prod-1'],
  );
});

test('100 management servers x 120 VMs: ingest and reads stay quick', async (t) => {
  const v = await vaultFor(t);
  const db = v.vault.db;
  const service = new InventoryService(db);
  const servers = Array.from({ length: 100 }, (_, i) => `ms_${i.toString(16).padStart(4, '0')}`);
  await db.query(
    `INSERT INTO management_servers (management_server_id, name) SELECT id, 'vmm-' || id FROM unnest($1::text[]) id`,
    [servers],
  );
  const started = Date.now();
  for (const ms of servers) {
    // 2 clouds x 3 hosts x 20 VMs = 120 VMs
    await service.apply(
      ms,
      syntheticInventory({ version: 1, clouds: ['prod', 'dr'], hostsPerCloud: 3, vmsPerHost: 20 }),
    );
  }
  const ingestMs = Date.now() - started;
  const count = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM fabric_vms');
  assert.equal(count.rows[0]?.n, 12_000);
  // again with a newer version (replaces everything): as quick
  const again = Date.now();
  for (const ms of servers.slice(0, 20))
    await service.apply(
      ms,
      syntheticInventory({ version: 2, clouds: ['prod'], hostsPerCloud: 3, vmsPerHost: 40 }),
    );
  const replaceMs = Date.now() - again;
  const reads = Date.now();
  const page = await v.admin.get<{ vms: VmView[]; next: string | null }>(
    `/v1/vms?managementServer=${servers[57] ?? ''}&cloud=cloud-dr&limit=1000`,
  );
  assert.equal(page.vms.length, 60);
  const clouds = await v.admin.get<{ clouds: CloudView[] }>('/v1/clouds?limit=1000');
  assert.equal(clouds.clouds.length, 20 + 80 * 2);
  const readMs = Date.now() - reads;
  // generous bounds for a loaded 2-core CI machine (measured ~4 s, ~1 s, ~0.1 s here)
  assert.ok(ingestMs < 40_000, `100 inventories of 120 VMs took ${ingestMs} ms`);
  assert.ok(replaceMs < 15_000, `20 replacements took ${replaceMs} ms`);
  assert.ok(readMs < 5_000, `reads took ${readMs} ms`);
  t.diagnostic(`ingest ${ingestMs} ms, replace ${replaceMs} ms, reads ${readMs} ms`);
});

test('an inventory over 1 MiB is taken from its provider; a caller without the action is refused', async (t) => {
  const v = await vaultFor(t);
  const east = await v.register('vmm-east');
  const msId = east.identity.registration.managementServerId;
  const big = syntheticInventory({ version: 1, clouds: ['prod'], hostsPerCloud: 10, vmsPerHost: 600 });
  const bytes = Buffer.byteLength(JSON.stringify(big));
  assert.ok(bytes > 1024 * 1024, `${bytes} bytes`);
  assert.deepEqual(await east.client.call('PUT', `/v1/management-servers/${msId}/inventory`, big), {
    inventoryVersion: 1,
    applied: true,
  });
  const { clouds } = await v.admin.get<{ clouds: CloudView[] }>('/v1/clouds');
  assert.equal(clouds[0]?.vmCount, 6000);
  const reader = await v.userClient('Reader');
  const refused = await reader.raw('PUT', `/v1/management-servers/${msId}/inventory`, {
    ...big,
    inventoryVersion: 2,
  });
  assert.equal(refused.status, 403);
  assert.match(refused.text, /may not provider\.inventory/);
});

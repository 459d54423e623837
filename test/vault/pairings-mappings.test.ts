/**
 * Cloud pairings, network mappings and storage mappings through the vault's API against a real
 * PostgreSQL (docs/design/vault.md section 6): the pairing rules (one pairing per cloud as primary or
 * recovery, also in the database; same server allowed; never a cloud with itself; idempotent create),
 * a policy a pairing uses cannot be deleted, a paired cloud that leaves the inventory is kept as
 * missing with an alert, the mapping rules (pair first; the target must serve the recovery cloud; one
 * mapping per source), and who may write.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import pg from 'pg';
import type { VaultClient } from '../../src/manager/provider/vault-client.js';
import type { CloudView, VmNetworkView } from '../../src/protocol/vault-api/fabric.schema.js';
import type { Inventory } from '../../src/protocol/vault-api/inventory.schema.js';
import type { NetworkMappingView, StorageMappingView } from '../../src/protocol/vault-api/mappings.schema.js';
import type { PairingView } from '../../src/protocol/vault-api/pairings.schema.js';
import type { AlertView } from '../../src/protocol/vault-api/vault-api.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { syntheticInventory } from './fabric-fixtures.js';
import { startTestVault, type TestVault } from './vault-fixtures.js';

const server = useTestPostgres();

interface Site {
  id: string;
  client: VaultClient;
  send(inv: Inventory): Promise<void>;
}

async function twoSites(t: TestContext): Promise<{ v: TestVault; east: Site; west: Site }> {
  const databaseUrl = await server.freshDatabase();
  const v = await startTestVault(server, t, { databaseUrl });
  t.after(() => server.dropDatabase(databaseUrl));
  const site = async (name: string): Promise<Site> => {
    const r = await v.register(name);
    const id = r.identity.registration.managementServerId;
    return {
      id,
      client: r.client,
      send: async (inv) => {
        await r.client.call('PUT', `/v1/management-servers/${id}/inventory`, inv);
      },
    };
  };
  const east = await site('vmm-east');
  const west = await site('vmm-west');
  await east.send(syntheticInventory({ version: 1, clouds: ['prod', 'test', 'extra'] }));
  await west.send(westInventory(1));
  await v.admin.post('/v1/policies', { name: 'gold' });
  await v.admin.post('/v1/policies', { name: 'silver', copyFrequencySeconds: 30 });
  return { v, east, west };
}

/** West: clouds dr and dr2, and a second network (dr-alt-net) for dr; classifications dr-gold, dr-silver. */
function westInventory(version: number): Inventory {
  const inv = syntheticInventory({
    version,
    clouds: ['dr', 'dr2'],
    classifications: ['dr-gold', 'dr-silver'],
  });
  inv.vmNetworks.push({ vmNetworkId: 'net-dr-alt', name: 'dr-alt-net', cloudIds: ['cloud-dr'], subnets: [] });
  return inv;
}

async function refused(
  client: VaultClient,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; code: string; message: string }> {
  const res = await client.raw(method, path, body);
  assert.ok(res.status >= 400 && res.status < 500, `${method} ${path}: ${res.status} ${res.text}`);
  const { error } = JSON.parse(res.text) as { error: { code: string; message: string } };
  return { status: res.status, code: error.code, message: error.message };
}

const pairBody = (
  p: Site,
  primaryCloud: string,
  r: Site,
  recoveryCloud: string,
  policy = 'gold',
): Record<string, string> => ({
  primaryManagementServerId: p.id,
  primaryCloudId: `cloud-${primaryCloud}`,
  recoveryManagementServerId: r.id,
  recoveryCloudId: `cloud-${recoveryCloud}`,
  policy,
});

test('cloud pairing rules, policy delete refused, a paired cloud that leaves the inventory', async (t) => {
  const { v, east, west } = await twoSites(t);
  const contributor = await v.userClient('Contributor');
  const created = await contributor.raw('POST', '/v1/cloud-pairings', pairBody(east, 'prod', west, 'dr'));
  assert.equal(created.status, 201, created.text);
  const pairing = JSON.parse(created.text) as PairingView;
  assert.match(pairing.pairingId, /^pair_/);
  assert.deepEqual(
    [
      pairing.primary.managementServerName,
      pairing.primary.cloudName,
      pairing.recovery.cloudName,
      pairing.policyName,
    ],
    ['vmm-east', 'prod', 'dr', 'gold'],
  );
  // the same triple again: 200, the same pairing
  const again = await contributor.raw('POST', '/v1/cloud-pairings', pairBody(east, 'prod', west, 'dr'));
  assert.equal(again.status, 200);
  assert.equal((JSON.parse(again.text) as PairingView).pairingId, pairing.pairingId);
  // the same clouds with another policy
  const otherPolicy = await refused(
    v.admin,
    'POST',
    '/v1/cloud-pairings',
    pairBody(east, 'prod', west, 'dr', 'silver'),
  );
  assert.equal(otherPolicy.code, 'SECONDSITE_ERR_ALREADY_EXISTS');
  assert.match(otherPolicy.message, /already paired with policy gold/);
  // a cloud in at most one pairing, as primary or recovery
  for (const [body, pattern] of [
    [
      pairBody(east, 'prod', west, 'dr2'),
      /cloud .*\/cloud-prod is already the primary cloud of pairing pair_\w+ \(vmm-east\/prod -> vmm-west\/dr, policy gold\)/,
    ],
    [pairBody(east, 'test', west, 'dr'), /cloud .*\/cloud-dr is already the recovery cloud of pairing/],
    [pairBody(west, 'dr', east, 'test'), /cloud .*\/cloud-dr is already the recovery cloud of pairing/],
    [pairBody(west, 'dr2', east, 'prod'), /cloud .*\/cloud-prod is already the primary cloud of pairing/],
  ] as const) {
    const r = await refused(v.admin, 'POST', '/v1/cloud-pairings', body);
    assert.equal(r.code, 'SECONDSITE_ERR_INVALID_STATE');
    assert.match(r.message, pattern);
    assert.match(r.message, /a cloud is in at most one pairing/);
  }
  // never a cloud with itself; within one management server is fine (single-server topology)
  const self = await refused(v.admin, 'POST', '/v1/cloud-pairings', pairBody(east, 'test', east, 'test'));
  assert.equal(self.status, 400);
  assert.match(self.message, /a cloud cannot be paired with itself/);
  const sameServer = await v.admin.post<PairingView>(
    '/v1/cloud-pairings',
    pairBody(east, 'test', east, 'extra', 'silver'),
  );
  assert.equal(sameServer.recovery.managementServerId, east.id);
  // unknown cloud, unknown policy
  const unknownCloud = await refused(
    v.admin,
    'POST',
    '/v1/cloud-pairings',
    pairBody(west, 'nope', west, 'dr2'),
  );
  assert.equal(unknownCloud.status, 404);
  assert.match(unknownCloud.message, /no primary cloud cloud-nope on management server/);
  const unknownPolicy = await refused(
    v.admin,
    'POST',
    '/v1/cloud-pairings',
    pairBody(west, 'dr2', east, 'test', 'bronze'),
  );
  assert.match(unknownPolicy.message, /no replication policy bronze/);
  // the database holds the rule too
  const c = new pg.Client({ connectionString: v.databaseUrl });
  await c.connect();
  try {
    await assert.rejects(
      c
        .query(`INSERT INTO cloud_pairings VALUES ('pair_x', $1, 'cloud-dr2', $2, 'cloud-prod', $3, now())`, [
          west.id,
          east.id,
          pairing.policyId,
        ])
        .then(() =>
          c.query(`INSERT INTO cloud_pairing_clouds VALUES ($1, 'cloud-prod', 'pair_x', 'recovery')`, [
            east.id,
          ]),
        ),
      /duplicate key value violates unique constraint "cloud_pairing_clouds_pkey"/,
    );
    await c.query(`DELETE FROM cloud_pairings WHERE pairing_id = 'pair_x'`);
  } finally {
    await c.end();
  }
  // readers read pairings, only Contributor and Owner write them
  const reader = await v.userClient('Reader');
  const operator = await v.userClient('Operator');
  const list = await reader.get<{ pairings: PairingView[]; next: string | null }>('/v1/cloud-pairings');
  assert.equal(list.pairings.length, 2);
  assert.equal(
    (await refused(operator, 'POST', '/v1/cloud-pairings', pairBody(west, 'dr2', east, 'test'))).status,
    403,
  );
  assert.equal((await refused(reader, 'DELETE', `/v1/cloud-pairings/${pairing.pairingId}`)).status, 403);
  // the clouds show their pairing
  const prod = await reader.get<CloudView>(`/v1/management-servers/${east.id}/clouds/cloud-prod`);
  assert.deepEqual(prod.pairing, {
    pairingId: pairing.pairingId,
    role: 'primary',
    peerManagementServerId: west.id,
    peerManagementServerName: 'vmm-west',
    peerCloudId: 'cloud-dr',
    peerCloudName: 'dr',
    policyName: 'gold',
  });

  // a policy a pairing uses cannot be deleted
  const policyDelete = await refused(v.admin, 'DELETE', '/v1/policies/gold');
  assert.equal(policyDelete.code, 'SECONDSITE_ERR_INVALID_STATE');
  assert.match(
    policyDelete.message,
    new RegExp(`replication policy gold is used by cloud pairing ${pairing.pairingId}; delete it first`),
  );
  assert.equal((await v.admin.get<{ name: string }>('/v1/policies/gold')).name, 'gold');

  // the paired cloud prod leaves east's inventory: kept as missing, with an alert; test (unpaired
  // copy of nothing) and extra stay; a missing cloud cannot be paired again
  await east.send(syntheticInventory({ version: 2, clouds: ['test', 'extra'] }));
  const missing = await reader.get<CloudView>(`/v1/management-servers/${east.id}/clouds/cloud-prod`);
  assert.equal(missing.state, 'missing');
  assert.deepEqual([missing.hostIds, missing.vmCount], [[], 0]);
  assert.equal(
    (await reader.get<PairingView>(`/v1/cloud-pairings/${pairing.pairingId}`)).primary.state,
    'missing',
  );
  const alerts = async (): Promise<AlertView[]> =>
    (await v.admin.get<{ alerts: AlertView[] }>('/v1/alerts')).alerts.filter(
      (a) => a.kind === 'fabric-object-missing',
    );
  const open = await alerts();
  assert.equal(open.length, 1);
  assert.equal(open[0]?.severity, 'Warning');
  assert.equal(open[0]?.objectId, `${east.id}/cloud-prod`);
  assert.match(
    open[0]?.message ?? '',
    /cloud prod \(cloud-prod\) of management server vmm-east is no longer in its inventory, but a cloud pairing uses it/,
  );
  // back in the next inventory: present, alert resolved
  await east.send(syntheticInventory({ version: 3, clouds: ['prod', 'test', 'extra'] }));
  assert.equal(
    (await reader.get<CloudView>(`/v1/management-servers/${east.id}/clouds/cloud-prod`)).state,
    'present',
  );
  assert.equal((await alerts()).length, 0);
  // gone again, then the pairing is deleted: the cloud goes with it, the alert is resolved
  await east.send(syntheticInventory({ version: 4, clouds: ['test', 'extra'] }));
  assert.equal((await alerts()).length, 1);
  const stillMissing = await refused(
    v.admin,
    'POST',
    '/v1/cloud-pairings',
    pairBody(east, 'prod', west, 'dr2'),
  );
  assert.match(
    stillMissing.message,
    /the primary cloud prod \(.*\/cloud-prod\) is missing from its management server's inventory since .*; it cannot be paired until/,
  );
  const deleted = await contributor.delete<{ pairingId: string; deleted: boolean }>(
    `/v1/cloud-pairings/${pairing.pairingId}`,
  );
  assert.deepEqual(deleted, { pairingId: pairing.pairingId, deleted: true });
  assert.equal(
    (await refused(reader, 'GET', `/v1/management-servers/${east.id}/clouds/cloud-prod`)).status,
    404,
  );
  assert.equal((await alerts()).length, 0);
  assert.equal((await refused(v.admin, 'DELETE', `/v1/cloud-pairings/${pairing.pairingId}`)).status, 404);
  // gold is unused now: it can be deleted
  await v.admin.delete('/v1/policies/gold');
});

test('concurrent pairings of one cloud: one wins, the other is told why; the same pairing twice is one', async (t) => {
  const { v, east, west } = await twoSites(t);
  for (let round = 0; round < 3; round++) {
    const answers = await Promise.all([
      v.admin.raw('POST', '/v1/cloud-pairings', pairBody(east, 'prod', west, 'dr')),
      v.admin.raw('POST', '/v1/cloud-pairings', pairBody(east, 'prod', west, 'dr2')),
      v.admin.raw('POST', '/v1/cloud-pairings', pairBody(east, 'prod', west, 'dr')),
    ]);
    const statuses = answers.map((a) => a.status);
    const won = statuses.filter((s) => s === 201).length;
    assert.equal(won, 1, `round ${round}: ${answers.map((a) => `${a.status} ${a.text}`).join(' | ')}`);
    for (const a of answers) {
      assert.ok([200, 201, 409].includes(a.status), a.text);
      if (a.status === 409)
        assert.match(
          a.text,
          /is already the (primary|recovery) cloud of pairing|a cloud is in at most one pairing/,
        );
    }
    const { pairings } = await v.admin.get<{ pairings: PairingView[] }>('/v1/cloud-pairings');
    assert.equal(pairings.length, 1, `round ${round}`);
    await v.admin.delete(`/v1/cloud-pairings/${pairings[0]?.pairingId ?? ''}`);
  }
});

test('network and storage mapping rules', async (t) => {
  const { v, east, west } = await twoSites(t);
  const netBody = (src: Site, srcNet: string, dst: Site, dstNet: string): Record<string, string> => ({
    sourceManagementServerId: src.id,
    sourceVmNetworkId: srcNet,
    targetManagementServerId: dst.id,
    targetVmNetworkId: dstNet,
  });
  // before any pairing: pair first
  const unpaired = await refused(
    v.admin,
    'POST',
    '/v1/network-mappings',
    netBody(east, 'net-prod', west, 'net-dr'),
  );
  assert.equal(unpaired.code, 'SECONDSITE_ERR_INVALID_STATE');
  assert.match(
    unpaired.message,
    /VM network prod-net is available only to clouds that are not the primary cloud of a pairing \(prod\): pair its cloud first/,
  );
  await v.admin.post('/v1/cloud-pairings', pairBody(east, 'prod', west, 'dr'));

  const contributor = await v.userClient('Contributor');
  const made = await contributor.raw(
    'POST',
    '/v1/network-mappings',
    netBody(east, 'net-prod', west, 'net-dr'),
  );
  assert.equal(made.status, 201, made.text);
  const mapping = JSON.parse(made.text) as NetworkMappingView;
  assert.deepEqual(
    [mapping.source.vmNetworkName, mapping.target.managementServerName, mapping.target.vmNetworkName],
    ['prod-net', 'vmm-west', 'dr-net'],
  );
  const again = await contributor.raw(
    'POST',
    '/v1/network-mappings',
    netBody(east, 'net-prod', west, 'net-dr'),
  );
  assert.equal(again.status, 200);
  // one mapping per source network
  const second = await refused(
    v.admin,
    'POST',
    '/v1/network-mappings',
    netBody(east, 'net-prod', west, 'net-dr-alt'),
  );
  assert.equal(second.code, 'SECONDSITE_ERR_ALREADY_EXISTS');
  assert.match(
    second.message,
    /VM network prod-net is already mapped to vmm-west\/dr-net \(mapping nmap_\w+\)/,
  );
  // the target must be a network of the recovery cloud
  await v.admin.post('/v1/cloud-pairings', pairBody(east, 'test', west, 'dr2'));
  const wrongTarget = await refused(
    v.admin,
    'POST',
    '/v1/network-mappings',
    netBody(east, 'net-test', west, 'net-dr'),
  );
  assert.equal(wrongTarget.status, 400);
  assert.match(
    wrongTarget.message,
    /VM network dr-net is not available to the recovery cloud of test-net's pairing \(vmm-west\/dr2\)/,
  );
  // a recovery cloud's network is no source (its cloud is not a primary), nor is a network to itself
  const fromRecovery = await refused(
    v.admin,
    'POST',
    '/v1/network-mappings',
    netBody(west, 'net-dr', east, 'net-prod'),
  );
  assert.match(fromRecovery.message, /pair its cloud first/);
  const self = await refused(
    v.admin,
    'POST',
    '/v1/network-mappings',
    netBody(east, 'net-test', east, 'net-test'),
  );
  assert.match(self.message, /cannot be mapped to itself/);
  const unknown = await refused(
    v.admin,
    'POST',
    '/v1/network-mappings',
    netBody(east, 'net-nope', west, 'net-dr'),
  );
  assert.equal(unknown.status, 404);
  // who may: Contributor and Owner write, Operator does not, Reader reads
  const operator = await v.userClient('Operator');
  assert.equal(
    (await refused(operator, 'POST', '/v1/network-mappings', netBody(east, 'net-test', west, 'net-dr2')))
      .status,
    403,
  );
  const reader = await v.userClient('Reader');
  const list = await reader.get<{ networkMappings: NetworkMappingView[] }>('/v1/network-mappings');
  assert.deepEqual(
    list.networkMappings.map((m) => m.mappingId),
    [mapping.mappingId],
  );
  const nets = await reader.get<{ vmNetworks: VmNetworkView[] }>(
    `/v1/vm-networks?managementServer=${east.id}&name=prod-net`,
  );
  assert.deepEqual(nets.vmNetworks[0]?.mappedTo, {
    mappingId: mapping.mappingId,
    managementServerId: west.id,
    vmNetworkId: 'net-dr',
  });

  // a mapped target network that leaves the inventory is kept as missing
  const withoutDr = westInventory(2);
  withoutDr.vmNetworks = withoutDr.vmNetworks.filter((n) => n.vmNetworkId !== 'net-dr');
  for (const vm of withoutDr.vms)
    for (const nic of vm.nics) if (nic.vmNetworkId === 'net-dr') nic.vmNetworkId = null;
  await west.send(withoutDr);
  const kept = await reader.get<{ networkMappings: NetworkMappingView[] }>('/v1/network-mappings');
  assert.equal(kept.networkMappings[0]?.target.state, 'missing');
  await contributor.delete(`/v1/network-mappings/${mapping.mappingId}`);
  assert.equal((await refused(v.admin, 'DELETE', `/v1/network-mappings/${mapping.mappingId}`)).status, 404);
  const westNets = await reader.get<{ vmNetworks: VmNetworkView[] }>(
    `/v1/vm-networks?managementServer=${west.id}`,
  );
  assert.ok(
    !westNets.vmNetworks.some((n) => n.vmNetworkId === 'net-dr'),
    'the missing network went with its mapping',
  );

  // storage mappings
  const stBody = (src: Site, a: string, dst: Site, b: string): Record<string, string> => ({
    sourceManagementServerId: src.id,
    sourceClassification: a,
    targetManagementServerId: dst.id,
    targetClassification: b,
  });
  const st = await contributor.raw('POST', '/v1/storage-mappings', stBody(east, 'gold', west, 'dr-gold'));
  assert.equal(st.status, 201, st.text);
  const stMapping = JSON.parse(st.text) as StorageMappingView;
  assert.equal(
    (await contributor.raw('POST', '/v1/storage-mappings', stBody(east, 'gold', west, 'dr-gold'))).status,
    200,
  );
  const stSecond = await refused(
    v.admin,
    'POST',
    '/v1/storage-mappings',
    stBody(east, 'gold', west, 'dr-silver'),
  );
  assert.equal(stSecond.code, 'SECONDSITE_ERR_ALREADY_EXISTS');
  assert.match(
    stSecond.message,
    /storage classification gold of vmm-east is already mapped to vmm-west\/dr-gold/,
  );
  const stUnknown = await refused(
    v.admin,
    'POST',
    '/v1/storage-mappings',
    stBody(east, 'platinum', west, 'dr-gold'),
  );
  assert.equal(stUnknown.status, 404);
  assert.match(stUnknown.message, /no source storage classification platinum on management server/);
  const stSelf = await refused(
    v.admin,
    'POST',
    '/v1/storage-mappings',
    stBody(east, 'silver', east, 'silver'),
  );
  assert.match(stSelf.message, /cannot be mapped to itself/);
  // one management server: another classification is fine
  await v.admin.post('/v1/storage-mappings', stBody(east, 'silver', east, 'gold'));
  const stList = await reader.get<{ storageMappings: StorageMappingView[] }>('/v1/storage-mappings');
  assert.equal(stList.storageMappings.length, 2);
  assert.equal(
    (await refused(operator, 'DELETE', `/v1/storage-mappings/${stMapping.mappingId}`)).status,
    403,
  );
  await contributor.delete(`/v1/storage-mappings/${stMapping.mappingId}`);
  assert.equal(
    (await reader.get<{ storageMappings: StorageMappingView[] }>('/v1/storage-mappings')).storageMappings
      .length,
    1,
  );
});

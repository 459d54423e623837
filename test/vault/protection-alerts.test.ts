/**
 * Protection alerts (issue 4) through the vault's real routes, with two vault processes on one
 * database, both delivering to one webhook: a replicated item's health Critical raised and resolved
 * once while both vaults take the same status reports at once; an RPO breach the monitor raises while
 * no report comes and resolves after a fresh one (a paused item never breaches); an item deleted
 * while Critical has its alert resolved by the monitor; disconnected hosts (Critical with items,
 * Warning without) raised and resolved by inventories. The webhook receives each event once.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { providerClient } from '../../src/manager/provider/provider-registration.js';
import type { VaultClient } from '../../src/manager/provider/vault-client.js';
import type { Inventory } from '../../src/protocol/vault-api/inventory.schema.js';
import type {
  RelationshipStatus,
  ReplicationStatus,
} from '../../src/protocol/vault-api/replication-status.schema.js';
import type { AlertView } from '../../src/protocol/vault-api/vault-api.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { syntheticInventory } from './fabric-fixtures.js';
import { startTestVault } from './vault-fixtures.js';

const server = useTestPostgres();

interface Delivery {
  event: string;
  delivery: string;
  alert: AlertView;
}

test('protection alerts: health Critical, RPO breach, disconnected hosts, each delivered once', async (t) => {
  const deliveries: Delivery[] = [];
  const hook = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { alert: AlertView };
      deliveries.push({
        event: String(req.headers['x-secondsite-event']),
        delivery: String(req.headers['x-secondsite-delivery']),
        alert: body.alert,
      });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => hook.close(() => r())));
  const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alerts`;
  const databaseUrl = await server.freshDatabase();
  const options = { databaseUrl, heartbeatIntervalSeconds: 30, monitorIntervalMs: 200, alertWebhookUrl: url };
  const vaults = await Promise.all([startTestVault(server, t, options), startTestVault(server, t, options)]);
  t.after(() => server.dropDatabase(databaseUrl));
  const [one, two] = vaults[0].adminToken !== null ? vaults : [vaults[1], vaults[0]];
  const db = one.vault.db;

  // two sites, a continuous policy (RPO threshold 60 s), a pairing prod -> dr
  const east = await one.register('vmm-east');
  const west = await one.register('vmm-west');
  const eastId = east.identity.registration.managementServerId;
  const westId = west.identity.registration.managementServerId;
  // the same provider identity talking to the other vault process (same CA, same database)
  const eastViaTwo = providerClient({
    ...east.identity,
    registration: { ...east.identity.registration, vaultUrl: two.vault.url },
  });
  const eastInventory = (version: number, disconnected: string[] = []): Inventory => {
    const inv = syntheticInventory({ version, clouds: ['prod'], hostsPerCloud: 2, vmsPerHost: 2 });
    for (const h of inv.hosts) if (disconnected.includes(h.hostId)) h.connectionState = 'disconnected';
    return inv;
  };
  const putInventory = (c: VaultClient, id: string, inv: Inventory): Promise<unknown> =>
    c.call('PUT', `/v1/management-servers/${id}/inventory`, inv);
  await putInventory(east.client, eastId, eastInventory(1));
  await putInventory(
    west.client,
    westId,
    syntheticInventory({ version: 1, clouds: ['dr'], classifications: ['dr-gold', 'dr-silver'] }),
  );
  await one.admin.post('/v1/policies', { name: 'continuous', copyFrequencySeconds: 0 });
  const pairing = await one.admin.post<{ pairingId: string }>('/v1/cloud-pairings', {
    primaryManagementServerId: eastId,
    primaryCloudId: 'cloud-prod',
    recoveryManagementServerId: westId,
    recoveryCloudId: 'cloud-dr',
    policy: 'continuous',
  });

  // items as the enable path leaves them once protected (placed, Protected)
  const items = [
    { id: 'item-a', vm: 'vm-prod-0-0', name: 'prod-vm-0-0' },
    { id: 'item-b', vm: 'vm-prod-0-1', name: 'prod-vm-0-1' },
  ];
  for (const i of items) {
    await db.query(
      `INSERT INTO replicated_items (replicated_item_id, primary_management_server_id, vm_id, vm_name,
         primary_host_id, pairing_id, recovery_management_server_id, replica_host_id, storage_location,
         protection_state)
       VALUES ($1, $2, $3, $4, 'host-prod-0', $5, $6, 'host-dr-0', 'fast', 'Protected')`,
      [i.id, eastId, i.vm, i.name, pairing.pairingId, westId],
    );
  }

  const relationship = (
    vmId: string,
    health: RelationshipStatus['health'],
    cutAgoSeconds: number,
    protectionState = 'replicating',
  ): RelationshipStatus => ({
    hostId: 'host-prod-0',
    relationshipId: vmId,
    vmId,
    replicaHostId: 'host-dr-0',
    protectionState,
    health,
    healthReasons:
      health === 'Critical' ? ['resync required: change tracking cannot vouch for the replica'] : [],
    lastPointId: `p-${Date.now()}`,
    lastPointCutAt: new Date(Date.now() - cutAgoSeconds * 1000).toISOString(),
    lagSeconds: cutAgoSeconds,
    waitingFor: null,
    lastError: null,
  });
  const report = (relationships: RelationshipStatus[]): ReplicationStatus => ({
    relationships,
    replicas: [],
  });
  /** The same report to both vault processes at once (two provider nodes, or a retry, racing). */
  const reportTwice = async (status: ReplicationStatus): Promise<void> => {
    await Promise.all(
      [east.client, eastViaTwo].map((c) =>
        c.call('PUT', `/v1/management-servers/${eastId}/replication-status`, status),
      ),
    );
  };
  const alerts = async (kind: string): Promise<AlertView[]> =>
    (await one.admin.get<{ alerts: AlertView[] }>('/v1/alerts?all=true')).alerts.filter(
      (a) => a.kind === kind,
    );
  const waitFor = async (what: string, ok: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > deadline) assert.fail(`${what}: deliveries ${JSON.stringify(deliveries)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  // health Critical: raised once though both vaults took the report
  await reportTwice(
    report([relationship('vm-prod-0-0', 'Critical', 1), relationship('vm-prod-0-1', 'Warning', 1)]),
  );
  let critical = await alerts('replicated-item-critical');
  assert.equal(critical.length, 1, JSON.stringify(critical));
  assert.equal(critical[0]?.objectId, 'item-a');
  assert.equal(critical[0]?.severity, 'Critical');
  assert.match(critical[0]?.message ?? '', /VM prod-vm-0-0 is Critical: resync required/);
  assert.equal(critical[0]?.resolvedAt, null);
  // the same Critical again changes nothing; Warning health raises no alert
  await reportTwice(
    report([relationship('vm-prod-0-0', 'Critical', 1), relationship('vm-prod-0-1', 'Warning', 1)]),
  );
  assert.equal((await alerts('replicated-item-critical')).length, 1);
  // back to Normal: resolved once
  await reportTwice(
    report([relationship('vm-prod-0-0', 'Normal', 1), relationship('vm-prod-0-1', 'Normal', 1)]),
  );
  critical = await alerts('replicated-item-critical');
  assert.equal(critical.length, 1);
  assert.ok(critical[0]?.resolvedAt, 'resolved when health left Critical');

  // RPO: item a's last point is 55 s old (threshold 60 s), item b's 300 s but paused by a person
  await reportTwice(
    report([relationship('vm-prod-0-0', 'Normal', 55), relationship('vm-prod-0-1', 'Normal', 300, 'paused')]),
  );
  assert.equal((await alerts('rpo-breach')).length, 0, 'no breach below the threshold');
  // no report comes: the monitor sees the RPO grow past 60 s
  await waitFor('the monitor raises rpo-breach', async () => (await alerts('rpo-breach')).length > 0);
  let rpo = await alerts('rpo-breach');
  assert.equal(rpo.length, 1, 'the paused item does not breach');
  assert.equal(rpo[0]?.objectId, 'item-a');
  assert.equal(rpo[0]?.severity, 'Warning');
  assert.match(rpo[0]?.message ?? '', /VM prod-vm-0-0 breaches its RPO: .* above the 60 s its policy allows/);
  await new Promise((r) => setTimeout(r, 600)); // several monitor passes of both vaults
  assert.equal((await alerts('rpo-breach')).length, 1, 'raised once by two monitors');
  // a fresh point: the monitor resolves it
  await east.client.call(
    'PUT',
    `/v1/management-servers/${eastId}/replication-status`,
    report([relationship('vm-prod-0-0', 'Normal', 2), relationship('vm-prod-0-1', 'Normal', 300, 'paused')]),
  );
  await waitFor('the monitor resolves rpo-breach', async () =>
    Boolean((await alerts('rpo-breach'))[0]?.resolvedAt),
  );
  rpo = await alerts('rpo-breach');
  assert.equal(rpo.length, 1);

  // an item deleted while Critical: the monitor resolves its alert
  await reportTwice(report([relationship('vm-prod-0-1', 'Critical', 1, 'resync-required')]));
  const itemB = (await alerts('replicated-item-critical')).find(
    (a) => a.objectId === 'item-b' && !a.resolvedAt,
  );
  assert.ok(itemB, 'item b Critical');
  await db.query(`DELETE FROM replicated_items WHERE replicated_item_id = 'item-b'`);
  await waitFor('the monitor resolves the alert of a deleted item', async () =>
    Boolean((await alerts('replicated-item-critical')).find((a) => a.objectId === 'item-b')?.resolvedAt),
  );

  // hosts: host-prod-0 holds item a (Critical), host-prod-1 none (Warning); both vaults take the inventory
  await Promise.all([
    putInventory(east.client, eastId, eastInventory(2, ['host-prod-0', 'host-prod-1'])),
    putInventory(eastViaTwo, eastId, eastInventory(2, ['host-prod-0', 'host-prod-1'])),
  ]);
  let hosts = await alerts('host-disconnected');
  assert.deepEqual(hosts.map((a) => [a.objectType, a.objectId, a.severity, a.resolvedAt]).sort(), [
    ['host', `${eastId}/host-prod-0`, 'Critical', null],
    ['host', `${eastId}/host-prod-1`, 'Warning', null],
  ]);
  assert.match(
    hosts.find((a) => a.severity === 'Critical')?.message ?? '',
    /host host-prod-0 of management server vmm-east is disconnected .* holds 1 replicated item /,
  );
  await putInventory(east.client, eastId, eastInventory(3, ['host-prod-1']));
  await putInventory(east.client, eastId, eastInventory(4));
  hosts = await alerts('host-disconnected');
  assert.equal(hosts.length, 2, 'no alert raised again while still disconnected');
  assert.ok(
    hosts.every((a) => a.resolvedAt !== null),
    'resolved when connected again',
  );

  // the webhook: every raise and resolve exactly once
  const all = (await one.admin.get<{ alerts: AlertView[] }>('/v1/alerts?all=true')).alerts;
  const ours = ['host-disconnected', 'replicated-item-critical', 'rpo-breach'];
  assert.equal(all.filter((a) => ours.includes(a.kind)).length, 5, JSON.stringify(all));
  const expected = all.flatMap((a) => [
    `alert.raised:${a.alertId}`,
    ...(a.resolvedAt ? [`alert.resolved:${a.alertId}`] : []),
  ]);
  await waitFor('every delivery', () => expected.every((e) => deliveries.some((d) => d.delivery === e)));
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(
    deliveries.map((d) => d.delivery).sort(),
    [...expected].sort(),
    'each event delivered once',
  );
  const kinds = new Set(deliveries.map((d) => d.alert.kind));
  assert.deepEqual([...kinds].sort(), ours);
});

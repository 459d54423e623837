/**
 * Replication status ingest through the vault's real route: a replica's points are stored when they
 * change and not written again when a report repeats them (the lag changes at every report, the points
 * once per copy interval: bench/vault-scale.bench.ts measured the rewrite); the primary side is updated
 * at every report.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type {
  ReplicaStatus,
  ReplicationStatus,
} from '../../src/protocol/vault-api/replication-status.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { syntheticInventory } from '../vault/fabric-fixtures.js';
import { startTestVault } from '../vault/vault-fixtures.js';

const server = useTestPostgres();

test('status ingest writes changed points, skips unchanged ones, and updates the primary side', async (t) => {
  const v = await startTestVault(server, t, { heartbeatIntervalSeconds: 30 });
  const east = await v.register('vmm-east');
  const west = await v.register('vmm-west');
  const eastId = east.identity.registration.managementServerId;
  const westId = west.identity.registration.managementServerId;
  await east.client.call(
    'PUT',
    `/v1/management-servers/${eastId}/inventory`,
    syntheticInventory({ version: 1, clouds: ['prod'] }),
  );
  await west.client.call(
    'PUT',
    `/v1/management-servers/${westId}/inventory`,
    syntheticInventory({ version: 1, clouds: ['dr'], classifications: ['dr-gold', 'dr-silver'] }),
  );
  await v.admin.post('/v1/policies', { name: 'gold' });
  const pairing = await v.admin.post<{ pairingId: string }>('/v1/cloud-pairings', {
    primaryManagementServerId: eastId,
    primaryCloudId: 'cloud-prod',
    recoveryManagementServerId: westId,
    recoveryCloudId: 'cloud-dr',
    policy: 'gold',
  });
  // two items on the same replica host, as the enable path leaves them once protected
  for (const [id, vm] of [
    ['item-a', 'vm-prod-0-0'],
    ['item-b', 'vm-prod-0-1'],
  ] as const) {
    await v.vault.db.query(
      `INSERT INTO replicated_items (replicated_item_id, primary_management_server_id, vm_id, vm_name,
         primary_host_id, pairing_id, recovery_management_server_id, replica_host_id, storage_location,
         protection_state)
       VALUES ($1, $2, $3, $3, 'host-prod-0', $4, $5, 'host-dr-0', 'fast', 'Protected')`,
      [id, eastId, vm, pairing.pairingId, westId],
    );
  }
  const points = (n: number): ReplicaStatus['points'] =>
    Array.from({ length: n }, (_, k) => ({
      pointId: `p${k}`,
      cutAt: new Date(Date.UTC(2026, 10, 22, 12, k)).toISOString(),
      consistency: 'crash-consistent' as const,
    }));
  const replica = (vm: string, n: number): ReplicaStatus => ({
    hostId: 'host-dr-0',
    relationshipId: vm,
    storageLocation: 'fast',
    points: points(n),
  });
  const report = (status: ReplicationStatus) =>
    west.client.call<{ primaryItems: number; replicaItems: number }>(
      'PUT',
      `/v1/management-servers/${westId}/replication-status`,
      status,
    );
  const stored = async (id: string): Promise<number> =>
    (await v.admin.get<{ points: unknown[] }>(`/v1/replicated-items/${id}`)).points.length;

  const first = await report({
    relationships: [],
    replicas: [replica('vm-prod-0-0', 3), replica('vm-prod-0-1', 5)],
  });
  assert.deepEqual(first, { primaryItems: 0, replicaItems: 2 });
  assert.equal(await stored('item-a'), 3);
  assert.equal(await stored('item-b'), 5);

  // the same points again: nothing written; one replica's points change: only that one
  const again = await report({
    relationships: [],
    replicas: [replica('vm-prod-0-0', 3), replica('vm-prod-0-1', 5)],
  });
  assert.deepEqual(again, { primaryItems: 0, replicaItems: 0 });
  const changed = await report({
    relationships: [],
    replicas: [replica('vm-prod-0-0', 4), replica('vm-prod-0-1', 5)],
  });
  assert.deepEqual(changed, { primaryItems: 0, replicaItems: 1 });
  assert.equal(await stored('item-a'), 4);
  assert.equal(await stored('item-b'), 5);

  // the primary side changes at every report (the lag does)
  const lagReport = (lagSeconds: number) =>
    east.client.call<{ primaryItems: number; replicaItems: number }>(
      'PUT',
      `/v1/management-servers/${eastId}/replication-status`,
      {
        relationships: [
          {
            hostId: 'host-prod-0',
            relationshipId: 'vm-prod-0-0',
            vmId: 'vm-prod-0-0',
            replicaHostId: 'host-dr-0',
            protectionState: 'replicating',
            health: 'Normal',
            healthReasons: [],
            lastPointId: 'p3',
            lastPointCutAt: new Date(Date.UTC(2026, 10, 22, 12, 3)).toISOString(),
            lagSeconds,
            waitingFor: null,
            lastError: null,
          },
        ],
        replicas: [],
      },
    );
  assert.deepEqual(await lagReport(5), { primaryItems: 1, replicaItems: 0 });
  assert.deepEqual(await lagReport(10), { primaryItems: 1, replicaItems: 0 });
  assert.equal((await v.admin.get<{ lagSeconds: number }>('/v1/replicated-items/item-a')).lagSeconds, 10);
});

/**
 * The vault's rules for disabling replication and for authorization sync (docs/design/protection.md
 * sections 6-7), without hosts: two management servers that send synthetic inventories and never poll
 * for commands. An item whose placement failed (EnableFailed, never placed) is disabled without any
 * command to its management server; an item still Enabling under its job is refused with the job's
 * id; a bad ?deleteReplica= is refused; creating a pairing starts one authorization-sync job per
 * management server (none for the same pairing again, none for a refused delete). A placed item whose
 * primary management server never answers (a site that is gone) is removed with force, without a
 * command, once the plain disable job waiting for it has ended; force with deleteReplica is refused. (A pairing's
 * deletion withdrawing the trust from real hosts: enable-replication.test.ts.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import type { CloudView } from '../../src/protocol/vault-api/fabric.schema.js';
import type { Inventory } from '../../src/protocol/vault-api/inventory.schema.js';
import type { JobDetail, JobView } from '../../src/protocol/vault-api/jobs.schema.js';
import type { PairingView } from '../../src/protocol/vault-api/pairings.schema.js';
import type {
  DisableReplicationResult,
  ReplicatedItemView,
} from '../../src/protocol/vault-api/replicated-items.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { syntheticInventory } from '../vault/fabric-fixtures.js';
import { startTestVault } from '../vault/vault-fixtures.js';
import { until } from './protection-fixtures.js';

const server = useTestPostgres();

async function rows<T extends pg.QueryResultRow>(url: string, text: string, params: unknown[]): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end();
  }
}

test('disable rules: an unplaced item needs no command, an Enabling item is refused; pairing changes start authorization syncs', async (t) => {
  const v = await startTestVault(server, t);
  const admin = v.admin;
  const site = async (name: string, inv: (version: number) => Inventory) => {
    const r = await v.register(name);
    const id = r.identity.registration.managementServerId;
    const send = (version: number) =>
      r.client.call('PUT', `/v1/management-servers/${id}/inventory`, inv(version));
    await send(1);
    return { id, send };
  };
  const east = await site('vmm-east', (version) =>
    syntheticInventory({ version, clouds: ['prod'], hostsPerCloud: 1, vmsPerHost: 2 }),
  );
  // west's hosts: a few bytes free at first (no replica fits), then plenty
  let roomy = false;
  const west = await site('vmm-west', (version) => {
    const inv = syntheticInventory({ version, clouds: ['dr'], hostsPerCloud: 1, vmsPerHost: 0 });
    if (roomy)
      for (const h of inv.hosts)
        for (const l of h.storageLocations) Object.assign(l, { capacityBytes: 2 ** 40, freeBytes: 2 ** 40 });
    return inv;
  });
  const cloud = async (ms: string, name: string): Promise<CloudView> =>
    (await admin.get<{ clouds: CloudView[] }>(`/v1/clouds?managementServer=${ms}`)).clouds.find(
      (c) => c.name === name,
    ) ?? assert.fail(`cloud ${name}`);
  await admin.post('/v1/policies', { name: 'gold' });
  const syncJobs = async (): Promise<JobView[]> =>
    (await admin.get<{ jobs: JobView[] }>('/v1/jobs?kind=authorization-sync')).jobs;
  const body = {
    primaryManagementServerId: east.id,
    primaryCloudId: (await cloud(east.id, 'prod')).cloudId,
    recoveryManagementServerId: west.id,
    recoveryCloudId: (await cloud(west.id, 'dr')).cloudId,
    policy: 'gold',
  };
  const pairing = await admin.post<PairingView>('/v1/cloud-pairings', body);
  assert.deepEqual(
    (await syncJobs()).map((j) => j.target.id).sort(),
    [east.id, west.id].sort(),
    'one authorization sync per management server of the new pairing',
  );
  await admin.post('/v1/cloud-pairings', body);
  assert.equal((await syncJobs()).length, 2, 'the same pairing again changes nothing: no new sync');
  await admin.post('/v1/network-mappings', {
    sourceManagementServerId: east.id,
    sourceVmNetworkId: 'net-prod',
    targetManagementServerId: west.id,
    targetVmNetworkId: 'net-dr',
  });

  // 1. no room: the enable job fails at placement; disabling needs no command
  const vm0 = 'vm-prod-0-0';
  const enabled = await admin.post<{ items: Array<{ replicatedItemId: string; jobId: string }> }>(
    '/v1/replicated-items',
    { managementServerId: east.id, vmIds: [vm0] },
  );
  const first = enabled.items[0] ?? assert.fail('an item');
  await until('the enable job to fail', async () =>
    (await admin.get<JobDetail>(`/v1/jobs/${first.jobId}`)).state === 'Failed' ? true : undefined,
  );
  await assert.rejects(
    admin.call('DELETE', `/v1/replicated-items/${first.replicatedItemId}?deleteReplica=yes`),
    /deleteReplica= is true or false/,
  );
  // by the VM's name (unique among items)
  const d = await admin.call<DisableReplicationResult>('DELETE', '/v1/replicated-items/prod-vm-0-0');
  assert.equal(d.replicatedItemId, first.replicatedItemId);
  assert.equal(d.deleteReplica, false, "the policy's default keeps replicas");
  const done = await until('the disable job to end', async () => {
    const j = await admin.get<JobDetail>(`/v1/jobs/${d.jobId}`);
    return ['Succeeded', 'Failed'].includes(j.state) ? j : undefined;
  });
  assert.equal(done.state, 'Succeeded', JSON.stringify(done));
  assert.deepEqual(
    await rows(v.databaseUrl, 'SELECT kind FROM provider_commands WHERE job_id = $1', [d.jobId]),
    [],
    'an item never placed has no relationship to disable',
  );
  assert.deepEqual((await admin.get<{ items: ReplicatedItemView[] }>('/v1/replicated-items')).items, []);

  // 2. room: the job places the replica and waits on west's authorization (west never polls)
  roomy = true;
  await west.send(2);
  const second = (
    await admin.post<{ items: Array<{ replicatedItemId: string; jobId: string }> }>('/v1/replicated-items', {
      managementServerId: east.id,
      vmIds: [vm0],
    })
  ).items[0];
  assert.ok(second);
  await until('the authorize step to send its command', async () =>
    (await rows(v.databaseUrl, 'SELECT 1 FROM provider_commands WHERE job_id = $1', [second.jobId])).length
      ? true
      : undefined,
  );
  await assert.rejects(admin.call('DELETE', `/v1/replicated-items/${second.replicatedItemId}`), (e: Error) =>
    e.message.includes(`is being enabled by job ${second.jobId}`),
  );
  const item = await admin.get<ReplicatedItemView>(`/v1/replicated-items/${second.replicatedItemId}`);
  assert.equal(item.protectionState, 'Enabling', 'a refused disable changes nothing');

  // 3. a pairing that protects items cannot be deleted, and the refusal starts no sync
  await assert.rejects(
    admin.call('DELETE', `/v1/cloud-pairings/${pairing.pairingId}`),
    /protects replicated/,
  );
  assert.equal((await syncJobs()).length, 2, 'a refused delete starts no sync');

  // 4. a site that is gone: a placed, protected item whose primary management server never answers.
  //    A plain disable waits for it; force removes the item without a command, once that job ended.
  const placed = async (vmId: string, itemId: string): Promise<void> => {
    await rows(
      v.databaseUrl,
      `INSERT INTO replicated_items (replicated_item_id, primary_management_server_id, vm_id, vm_name,
         primary_host_id, pairing_id, recovery_management_server_id, replica_host_id, storage_location,
         protection_state)
       VALUES ($1, $2, $3, $4, 'host-prod-0', $5, $6, 'host-dr-0', 'default', 'Protected')`,
      [itemId, east.id, vmId, `item-of-${vmId}`, pairing.pairingId, west.id],
    );
  };
  await placed('vm-prod-0-1', 'ri_forced');
  await assert.rejects(
    admin.call('DELETE', '/v1/replicated-items/ri_forced?force=true&deleteReplica=true'),
    /forced removal does not contact the hosts, so it cannot delete the replica/,
  );
  await assert.rejects(
    admin.call('DELETE', '/v1/replicated-items/ri_forced?force=maybe'),
    /force= is true or false/,
  );
  const plain = await admin.call<DisableReplicationResult>('DELETE', '/v1/replicated-items/ri_forced');
  assert.equal(plain.force, false);
  await until('the plain disable to send its command', async () =>
    (await rows(v.databaseUrl, 'SELECT 1 FROM provider_commands WHERE job_id = $1', [plain.jobId])).length
      ? true
      : undefined,
  );
  await assert.rejects(admin.call('DELETE', '/v1/replicated-items/ri_forced?force=true'), (e: Error) =>
    e.message.includes(`being disabled by job ${plain.jobId}, which waits for the primary management server`),
  );
  // the plain job ends (here: its run is given up, as after its command timed out), then force
  await rows(
    v.databaseUrl,
    `UPDATE vault_jobs SET state = 'Failed', ended_at = now(), error_code = 'SECONDSITE_ERR_TIMEOUT',
       error_message = 'no answer' WHERE job_id = $1`,
    [plain.jobId],
  );
  const forced = await admin.call<DisableReplicationResult>(
    'DELETE',
    '/v1/replicated-items/ri_forced?force=true',
  );
  assert.notEqual(forced.jobId, plain.jobId);
  assert.equal(forced.force, true);
  assert.equal(forced.deleteReplica, false, 'a forced removal leaves the replica where it is');
  const forcedJob = await until('the forced removal to end', async () => {
    const j = await admin.get<JobDetail>(`/v1/jobs/${forced.jobId}`);
    return ['Succeeded', 'Failed'].includes(j.state) ? j : undefined;
  });
  assert.equal(forcedJob.state, 'Succeeded', JSON.stringify(forcedJob));
  assert.match(forcedJob.tasks[0]?.message ?? '', /forced: host-prod-0 and host-dr-0 are not contacted/);
  assert.deepEqual(
    await rows(v.databaseUrl, 'SELECT 1 FROM provider_commands WHERE job_id = $1', [forced.jobId]),
    [],
    'a forced removal sends no command',
  );
  await assert.rejects(admin.get('/v1/replicated-items/ri_forced'), /no replicated item/);
});

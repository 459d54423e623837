/**
 * Protecting a VM through the vault, end to end (docs/design/protection.md), on two sites with real
 * host agents (protection-fixtures.ts: a vault, a management server per site with its own database and
 * site CA, one host agent per site enrolled into its manager, the fabric, a running VM).
 *
 * Enabling replication places the replica on the recovery host, authorizes the hosts across the sites
 * (trust groups), starts replication, and the item becomes Protected with recovery points that
 * advance; enabling again is harmless. Disabling (sections 6-7): the policy's deleteReplicaOnDisable decides whether the
 * replica stays on the replica host, `--keep-replica`/`--delete-replica` override it; the item leaves
 * the list, the primary host no longer replicates, enabling again works; two disables at once are one
 * job. Deleting the pairing afterwards withdraws the trust it gave (authorization-sync job): the
 * recovery host's managed authorization list no longer names the primary host, also when that host
 * was down at the deletion (its management server pushes the lists it missed when it is back).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AuthorizationView } from '../../src/protocol/host-api/authorization.schema.js';
import type { JobView } from '../../src/protocol/vault-api/jobs.schema.js';
import type {
  DisableReplicationResult,
  ReplicatedItemDetail,
  ReplicatedItemView,
} from '../../src/protocol/vault-api/replicated-items.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { startTestVault } from '../vault/vault-fixtures.js';
import { cli, startTwoSites, until } from './protection-fixtures.js';

const pg = useTestPostgres();

test('replication through the vault: enable (placement, cross-site trust, advancing points), disable keeping or deleting the replica (policy, override), enable again; a deleted pairing withdraws trust', async (t) => {
  const t0 = Date.now();
  const vault = await startTestVault(pg, t);
  const { managers, lab, pairing } = await startTwoSites(pg, t, vault);
  const admin = vault.admin;
  const vaultArgs = ['--vault-dir', vault.dataDir];
  const a1 = lab.host('host-a1').client;
  const b1 = lab.host('host-b1').client;

  const enable = async (): Promise<ReplicatedItemDetail> => {
    const out = await cli(
      'vault',
      'item',
      'enable',
      ...vaultArgs,
      '--management-server',
      'vmm-site-a',
      '--vm',
      'web',
      '--wait',
      '--timeout-seconds',
      '60',
    );
    assert.match(out, /Succeeded/);
    const item = await admin.get<ReplicatedItemDetail>('/v1/replicated-items/web');
    assert.equal(item.protectionState, 'Protected');
    return until('points on the replica', async () => {
      const i = await admin.get<ReplicatedItemDetail>(`/v1/replicated-items/${item.replicatedItemId}`);
      return i.points.length > 0 ? i : undefined;
    });
  };
  const relationships = async (): Promise<string[]> =>
    (
      await a1.get<{ relationships: Array<{ definition: { relationshipId: string } }> }>('/v1/relationships')
    ).relationships.map((r) => r.definition.relationshipId);
  /** The points of the replica of `web` on host-b1; null: no replica. */
  const replicaPoints = async (): Promise<number | null> => {
    const { replicas } = await b1.get<{ replicas: Array<{ relationshipId: string; points: unknown[] }> }>(
      '/v1/replicas',
    );
    return replicas.find((r) => r.relationshipId === 'web')?.points.length ?? null;
  };
  const items = async (): Promise<ReplicatedItemView[]> =>
    (await admin.get<{ items: ReplicatedItemView[] }>('/v1/replicated-items')).items;

  t.diagnostic(`t+${Date.now() - t0} ms: setup`);
  // 1. the policy keeps the replica (deleteReplicaOnDisable false, the default)
  const first = await enable();
  assert.equal(first.replicaHostId, 'host-b1');
  assert.equal(first.storageLocation, 'default');
  assert.ok(first.lastPointId, 'a last recovery point');
  assert.deepEqual(await relationships(), ['web']);
  // the hosts trust each other through their sites' CAs, as the pairing says
  const managed = async (): Promise<string[]> =>
    (await lab.host('host-b1').client.get<AuthorizationView>('/v1/authorization')).entries
      .filter((e) => e.source === 'managed')
      .map((e) => `${e.primaryHostId}@${e.trustGroup}`);
  assert.deepEqual(await managed(), [`host-a1@${managers.a.id}`]);
  // the points advance while the VM runs
  await until('a newer point', async () => {
    const i = await admin.get<ReplicatedItemDetail>(`/v1/replicated-items/${first.replicatedItemId}`);
    return i.lastPointId !== first.lastPointId && i.replicationHealth === 'Normal' ? i : undefined;
  });
  // enabling again is harmless: same item, no new job
  const again = await admin.post<{ items: Array<{ replicatedItemId: string; jobId: string | null }> }>(
    '/v1/replicated-items',
    { managementServerId: managers.a.id, vmIds: ['web'] },
  );
  assert.equal(again.items[0]?.replicatedItemId, first.replicatedItemId);
  assert.equal(again.items[0]?.jobId, first.enableJobId);

  const out = await cli('vault', 'item', 'disable', 'web', ...vaultArgs, '--wait');
  t.diagnostic(`t+${Date.now() - t0} ms: first disable`);
  assert.match(out, /keeping the replica/);
  assert.match(out, /Succeeded/);
  assert.deepEqual(await items(), [], 'the item left the list');
  assert.deepEqual(await relationships(), [], 'the primary host no longer replicates');
  const kept = await replicaPoints();
  assert.ok(kept !== null && kept > 0, `the replica stays, with its points (${kept})`);
  await assert.rejects(
    admin.call('DELETE', `/v1/replicated-items/${first.replicatedItemId}`),
    /no replicated item/,
  );

  // 2. enabling again works (the kept replica is taken up again or replaced); the policy now says
  //    delete, --keep-replica overrides it; two disables at once are one job
  const second = await enable();
  assert.notEqual(second.replicatedItemId, first.replicatedItemId);
  await admin.call('PUT', '/v1/policies/continuous', { deleteReplicaOnDisable: true });
  t.diagnostic(`t+${Date.now() - t0} ms: second enable`);
  const [d1, d2] = await Promise.all([
    admin.call<DisableReplicationResult>('DELETE', '/v1/replicated-items/web?deleteReplica=false'),
    admin.call<DisableReplicationResult>('DELETE', '/v1/replicated-items/web'),
  ]);
  assert.equal(d1.jobId, d2.jobId, 'a Disabling item answers its running job');
  assert.equal(d1.deleteReplica, d2.deleteReplica, "the running job's choice holds for both");
  await cli('vault', 'job', 'wait', d1.jobId, ...vaultArgs, '--timeout', '60');
  assert.deepEqual(await items(), []);
  assert.equal(
    (await replicaPoints()) === null,
    d1.deleteReplica,
    `the replica is ${d1.deleteReplica ? 'deleted' : 'kept'} as the job said`,
  );

  t.diagnostic(`t+${Date.now() - t0} ms: second disable`);
  // 3. the policy deletes the replica
  await enable();
  const out3 = await cli('vault', 'item', 'disable', 'web', ...vaultArgs, '--wait');
  assert.match(out3, /deleting the replica/);
  assert.deepEqual(await items(), []);
  assert.equal(await replicaPoints(), null, 'the replica is gone from the replica host');
  assert.deepEqual(await relationships(), []);

  t.diagnostic(`t+${Date.now() - t0} ms: third disable`);
  // 4. the pairing's trust: named on the recovery host while the pairing exists, withdrawn after, also
  //    from a host that was down when the pairing was deleted (the manager keeps the newest lists and
  //    pushes them to a host that missed them)
  assert.deepEqual(await managed(), [`host-a1@${managers.a.id}`]);
  await lab.stopHost('host-b1');
  const syncsBefore = (await admin.get<{ jobs: JobView[] }>('/v1/jobs?kind=authorization-sync')).jobs.length;
  await admin.call('DELETE', `/v1/cloud-pairings/${pairing.pairingId}`);
  await until('the authorization syncs of the deletion to end', async () => {
    const { jobs } = await admin.get<{ jobs: JobView[] }>('/v1/jobs?kind=authorization-sync');
    return jobs.length >= syncsBefore + 2 && jobs.every((j) => ['Succeeded', 'Failed'].includes(j.state))
      ? true
      : undefined;
  });
  await lab.start('host-b1');
  await until('the trust withdrawn from host-b1, down when it was withdrawn', async () =>
    (await managed()).length === 0 ? true : undefined,
  );
  const a1Managed = (await a1.get<AuthorizationView>('/v1/authorization')).entries.filter(
    (e) => e.source === 'managed',
  );
  assert.deepEqual(a1Managed, [], 'and the mirror entries from host-a1');
});

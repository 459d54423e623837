/**
 * kill -9 of the PRIMARY host's agent at random moments of its failover operations: `failover prepare`
 * (planned failover: shutdown + last cycle) and `replica seed` (reverse replication: its disks become
 * the replica). After each restart the VM is in the state before the operation or after it: prepare
 * leaves replication enabled (the VM possibly shut down) or prepared with a point the replica holds;
 * seed leaves the disks on the host or a seeded replica holding exactly them, never neither. Re-issuing
 * the operation completes it. SECONDSITE_PRIMARY_CRASH_CASES (default 6 of each), SECONDSITE_SEED.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { Rng, seedFrom } from '../../src/domain/random.js';
import type { DiskView } from '../../src/protocol/host-api/disks.schema.js';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import type { ReplicaView } from '../../src/host/agent/replica-service.js';
import { cleanupsAfterAll, MiB, openPoint, replicaView, twoHostLab } from '../host/fixtures.js';
import { diskFile, protectedVm } from './failover-fixtures.js';

const cleanups = cleanupsAfterAll();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const DISK_BYTES = 8 * MiB;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('kill -9 of the primary agent during prepare and seed: before or after, never neither', async () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 9090);
  const cases = Number(process.env['SECONDSITE_PRIMARY_CRASH_CASES'] ?? 6);
  const rng = new Rng(seed);
  const { lab, cleanup } = await twoHostLab('ss-primary-crash-', { mutual: true });
  cleanups.push(cleanup);
  const a = lab.host('host-a');
  const b = lab.host('host-b');
  const outcomes = { before: 0, after: 0 };
  for (let i = 0; i < cases; i++) {
    const vmId = `q${i}`;
    const diskId = `${vmId}-d0`;
    await protectedVm(lab, vmId, { recordsPerSec: 100, diskBytes: DISK_BYTES });
    await sleep(300);

    // prepare, killed at a random moment
    let where = `seed ${seed} case ${i} prepare`;
    const killMs = rng.int(300);
    const call = a.client
      .post(`/v1/relationships/${vmId}/prepare-failover`, { timeoutMs: 10_000 })
      .catch(() => null);
    await sleep(killMs);
    await lab.kill('host-a');
    await call;
    await lab.start('host-a');
    const afterPrepare = await a.client.get<RelationshipView>(`/v1/relationships/${vmId}`);
    const state = afterPrepare.definition.state;
    assert.ok(state === 'enabled' || state === 'prepared', `${where} (killed after ${killMs} ms): ${state}`);
    outcomes[state === 'prepared' ? 'after' : 'before']++;
    if (state === 'prepared') {
      const pointId = afterPrepare.definition.preparedPoint?.pointId;
      assert.ok(
        (await replicaView(lab, vmId)).points.some((p) => p.pointId === pointId),
        `${where}: point on B`,
      );
    }
    const prepared = await a.client.post<{ finalPoint: { pointId: string } }>(
      `/v1/relationships/${vmId}/prepare-failover`,
      {
        timeoutMs: 10_000,
      },
    );
    // the final point is A's disk: the VM is off and nothing was written after the last cut
    const opened = await openPoint(lab, vmId, prepared.finalPoint.pointId, [diskId]);
    try {
      const point = await opened.clients[0]!.read(0, DISK_BYTES);
      assert.equal(
        sha256(point),
        sha256(await diskFile(lab, 'host-a', diskId)),
        `${where}: final point differs`,
      );
    } finally {
      await opened.close();
    }
    await b.client.post(`/v1/replicas/${vmId}/failover`, { pointId: prepared.finalPoint.pointId });
    await b.client.post(`/v1/replicas/${vmId}/failover/commit`);
    await b.client.post(`/v1/vms/${vmId}/power-off`);

    // seed, killed at a random moment
    where = `seed ${seed} case ${i} seed`;
    const image = await diskFile(lab, 'host-a', diskId);
    const seedKillMs = rng.int(25);
    const seeding = a.client
      .post(`/v1/replicas/${vmId}/seed`, { diskIds: [diskId], epoch: 1 })
      .catch(() => null);
    await sleep(seedKillMs);
    await lab.kill('host-a');
    await seeding;
    await lab.start('host-a');
    const served = (await a.client.get<{ disks: DiskView[] }>('/v1/disks')).disks.some(
      (d) => d.diskId === diskId,
    );
    const seeded = await a.client.get<ReplicaView>(`/v1/replicas/${vmId}`).catch(() => null);
    assert.ok(
      served || seeded,
      `${where} (killed after ${seedKillMs} ms): the disk is neither on A nor in its replica`,
    );
    outcomes[seeded ? 'after' : 'before']++;
    const view = await a.client.post<ReplicaView>(`/v1/replicas/${vmId}/seed`, {
      diskIds: [diskId],
      epoch: 1,
    });
    assert.deepEqual(
      view.points.map((p) => p.cycleId),
      ['seed'],
      where,
    );
    const opened2 = await openPoint(lab, vmId, view.points[0]!.pointId, [diskId], 'host-a');
    try {
      const point = await opened2.clients[0]!.read(0, DISK_BYTES);
      assert.equal(sha256(point), sha256(image), `${where}: the seed point is A's old disk`);
    } finally {
      await opened2.close();
    }
    const left = (await a.client.get<{ disks: DiskView[] }>('/v1/disks')).disks.some(
      (d) => d.diskId === diskId,
    );
    assert.equal(left, false, `${where}: the disk left A's disk list`);
  }
  console.log(`primary crash cases: ${cases * 2} (${outcomes.before} before, ${outcomes.after} after)`);
});

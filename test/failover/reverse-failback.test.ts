/**
 * Reverse replication and failback end to end (docs/design/failover.md sections 7-8): a guest VM on
 * host A fails over to host B (planned: zero loss) and keeps writing there; host A's copies of its
 * disks become the seeded replica of the reverse direction, and B's first cycle sends only what
 * differs: at most 1.1 x the chunks the guest wrote since the failover, plus one chunk (no full copy).
 * Failback: a planned failover back to A, where the VM's disk equals B's byte for byte and no record
 * is lost; then replication is reversed again, from A to B, sending only what differs.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import type { ReplicaView } from '../../src/host/agent/replica-service.js';
import type { FailoverView } from '../../src/host/failover/failover-service.js';
import type { HostLab } from '../../src/lab/host-lab.js';
import { cleanupsAfterAll, MiB, openPoint, twoHostLab, waitFor } from '../host/fixtures.js';
import {
  CHUNK_BYTES,
  chunksOfRecords,
  diskFile,
  guestRunning,
  logOf,
  protectedVm,
  vmStatus,
} from './failover-fixtures.js';

const cleanups = cleanupsAfterAll();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const DISK_BYTES = 16 * MiB;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Planned failover of `vmId` from `from` to `to`: returns the final point and the recovered guest. */
async function plannedFailover(
  lab: HostLab,
  vmId: string,
  from: string,
  to: string,
): Promise<{ bootSeq: number; lastSeq: number }> {
  const prepared = await lab
    .host(from)
    .client.post<{ finalPoint: { pointId: string } }>(`/v1/relationships/${vmId}/prepare-failover`, {
      timeoutMs: 10_000,
    });
  const primary = await diskFile(lab, from, `${vmId}-d0`);
  const opened = await openPoint(lab, vmId, prepared.finalPoint.pointId, [`${vmId}-d0`], to);
  try {
    const point = await opened.clients[0]!.read(0, DISK_BYTES);
    assert.equal(sha256(point), sha256(primary), `${from} -> ${to}: the final point equals ${from}'s disk`);
  } finally {
    await opened.close();
  }
  const lastSeq = (await logOf(primary)).lastSeq;
  await lab
    .host(to)
    .client.post<FailoverView>(`/v1/replicas/${vmId}/failover`, { pointId: prepared.finalPoint.pointId });
  const committed = await lab.host(to).client.post<FailoverView>(`/v1/replicas/${vmId}/failover/commit`);
  assert.equal(committed.state, 'failed-over');
  const running = await guestRunning(lab, to, vmId);
  assert.equal(running.guest?.bootSeq, lastSeq, `${from} -> ${to}: no record lost`);
  return { bootSeq: running.guest?.bootSeq ?? 0, lastSeq };
}

/** Reverse replication: `oldPrimary` seeds from its disks, `newPrimary` replicates to it at `epoch`. */
async function reverse(
  lab: HostLab,
  vmId: string,
  oldPrimary: string,
  newPrimary: string,
  epoch: number,
  bootSeq: number,
): Promise<void> {
  const seeded = await lab.host(oldPrimary).client.post<ReplicaView>(`/v1/replicas/${vmId}/seed`, {
    diskIds: [`${vmId}-d0`],
    epoch,
  });
  assert.deepEqual(
    seeded.points.map((p) => p.cycleId),
    ['seed'],
  );
  await lab.host(newPrimary).client.post<RelationshipView>('/v1/relationships', {
    vmId,
    diskIds: [`${vmId}-d0`],
    replica: { hostId: oldPrimary, address: '127.0.0.1', port: lab.host(oldPrimary).replicationPort },
    policy: { copyFrequencySeconds: 900, chunkBytes: CHUNK_BYTES },
    epoch,
  });
  const view = await waitFor(
    `${newPrimary} -> ${oldPrimary}: the first reverse point`,
    async () => {
      const v = await lab.host(oldPrimary).client.get<ReplicaView>(`/v1/replicas/${vmId}`);
      return v.latestPoint !== null && v.latestPoint.cycleId !== 'seed' ? v : null;
    },
    120_000,
  );
  assert.equal(view.epoch, epoch);
  const rel = await lab.host(newPrimary).client.get<RelationshipView>(`/v1/relationships/${vmId}`);
  const guest = (await vmStatus(lab, newPrimary, vmId)).guest;
  assert.ok(guest);
  const image = await diskFile(lab, newPrimary, `${vmId}-d0`);
  const changed = chunksOfRecords(await logOf(image), bootSeq, guest.lastWrittenSeq);
  const bound = 1.1 * changed + CHUNK_BYTES;
  const sent = rel.report.bytes.logicalSent;
  console.log(
    `reverse ${newPrimary} -> ${oldPrimary}: sent ${sent} bytes for ${changed} bytes of chunks written since the failover (bound ${Math.round(bound)}, disk ${DISK_BYTES})`,
  );
  assert.ok(sent <= bound, `${newPrimary} -> ${oldPrimary}: sent ${sent} > ${bound}: more than what differs`);
  assert.ok(sent < DISK_BYTES / 4, 'no full copy');
}

test('reverse replication sends only what differs; failback returns the VM with equal disks and no loss', async () => {
  const { lab, cleanup } = await twoHostLab('ss-reverse-', { mutual: true });
  cleanups.push(cleanup);
  await protectedVm(lab, 'r1', { recordsPerSec: 100, diskBytes: DISK_BYTES });
  await sleep(1000);

  // A -> B (planned), the VM keeps writing on B, then B replicates back to A's seeded copy
  const toB = await plannedFailover(lab, 'r1', 'host-a', 'host-b');
  await sleep(1500);
  await reverse(lab, 'r1', 'host-a', 'host-b', 1, toB.bootSeq);

  // failback: B -> A (planned), then A replicates to B's seeded copy
  const toA = await plannedFailover(lab, 'r1', 'host-b', 'host-a');
  await sleep(1500);
  await reverse(lab, 'r1', 'host-b', 'host-a', 2, toA.bootSeq);
  await lab.host('host-a').client.post('/v1/vms/r1/power-off');
});

/**
 * Unplanned failover end to end (docs/design/failover.md sections 4-6), seeded trials: a guest VM on
 * host A writes its record log and replicates continuously to host B; host A dies (SIGKILL of its
 * agent and of every guest); B fails over to the latest point. Each trial checks:
 *   - the recovered guest validates its log at boot and runs;
 *   - data loss (newest record on A's disk minus newest record recovered, by the records' own
 *     timestamps) stays within the continuous mode's bound; p50 / p99 / max are printed;
 *   - the old primary, restarted, is fenced: its sender gets SECONDSITE_ERR_STALE_EPOCH;
 *   - after a commit, reverse replication to the old primary's copy sends only what differs (the
 *     chunks written on B since the failover plus those A wrote and never shipped, x1.1 + 1 chunk),
 *     and its first point equals B's disk;
 * and, by trial, commit (the disk becomes an ordinary disk of B, the VM keeps writing, the replica is
 * gone), change of recovery point to an older point, or cancel (back to receiving, epoch raised, and
 * the primary resumes replication at the new epoch).
 * SECONDSITE_FAILOVER_TRIALS sets the number of trials (default 10), SECONDSITE_SEED the seed.
 */
import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { validateGuestLog } from '../../src/guest/app/guest-log.validator.js';
import type { FailoverView } from '../../src/host/failover/failover-service.js';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import type { ReplicaView } from '../../src/host/agent/replica-service.js';
import type { HostLab } from '../../src/lab/host-lab.js';
import {
  cleanupsAfterAll,
  MiB,
  openLatestPoint,
  replicaView,
  twoHostLab,
  waitFor,
} from '../host/fixtures.js';
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
/** Continuous mode's lag target (issue: p99 <= 5 s), plus the guest's flush interval. */
const LOSS_BOUND_MS = 5_000;
const DISK_BYTES = 16 * MiB;

/** The newest record on a host's disk image (read from the file: the host is dead, its files stay). */
async function newestRecordOnDisk(
  lab: HostLab,
  hostId: string,
  diskId: string,
): Promise<{ seq: number; wallMs: number }> {
  const f = await open(join(lab.host(hostId).stateDir, 'storage', 'disks', `${diskId}.raw`), 'r');
  try {
    const report = await validateGuestLog(async (o, l) => {
      const buf = Buffer.alloc(l);
      await f.read(buf, 0, l, o);
      return buf;
    }, DISK_BYTES);
    assert.ok(report.valid, `the primary's own log is valid: ${report.problem?.message ?? ''}`);
    return { seq: report.lastSeq, wallMs: report.lastRecord?.timestampWallMs ?? 0 };
  } finally {
    await f.close();
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

test('unplanned failover after host A dies: the guest recovers, loss is bounded, the old primary is fenced', async () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 6060);
  const trials = Number(process.env['SECONDSITE_FAILOVER_TRIALS'] ?? 10);
  const rng = new Rng(seed);
  const { lab, cleanup } = await twoHostLab('ss-unplanned-', { mutual: true });
  cleanups.push(cleanup);
  const b = lab.host('host-b');
  const lossesMs: number[] = [];
  const log: string[] = [];
  for (let i = 0; i < trials; i++) {
    const vmId = `u${i}`;
    const where = `seed ${seed} trial ${i}`;
    const vm = await protectedVm(lab, vmId, { recordsPerSec: 100, diskBytes: DISK_BYTES });
    const diskId = vm.diskIds[0] as string;
    await sleep(1000 + rng.int(2000));
    await lab.killWithGuests('host-a');
    const onA = await newestRecordOnDisk(lab, 'host-a', diskId);

    const fo = await b.client.post<FailoverView>(`/v1/replicas/${vmId}/failover`, {});
    assert.equal(fo.state, 'failover-pending-commit', where);
    assert.equal(fo.epoch, 1, `${where}: the failover raised the epoch`);
    let recovered = await guestRunning(lab, 'host-b', vmId);
    const bootSeq = recovered.guest?.bootSeq ?? 0;
    assert.ok(
      bootSeq > 0 && bootSeq <= onA.seq,
      `${where}: recovered seq ${bootSeq}, primary wrote ${onA.seq}`,
    );
    const lostRecords = onA.seq - bootSeq;
    const lossMs = (lostRecords / 100) * 1000;
    lossesMs.push(lossMs);
    assert.ok(
      lossMs <= LOSS_BOUND_MS,
      `${where}: lost ${lostRecords} records (~${lossMs} ms) > ${LOSS_BOUND_MS} ms`,
    );

    const op = i % 3 === 0 ? 'commit' : i % 3 === 1 ? 'change-point+commit' : 'cancel';
    if (op === 'change-point+commit') {
      const points = (await replicaView(lab, vmId)).points;
      const oldest = points[0];
      assert.ok(oldest);
      const changed = await b.client.post<FailoverView>(`/v1/replicas/${vmId}/failover/change-point`, {
        pointId: oldest.pointId,
      });
      assert.equal(changed.pointId, oldest.pointId);
      recovered = await guestRunning(lab, 'host-b', vmId);
      assert.ok((recovered.guest?.bootSeq ?? 0) <= bootSeq, `${where}: an older point has no newer records`);
    }
    if (op === 'cancel') {
      const cancelled = await b.client.post<FailoverView & { resumeEpoch: number }>(
        `/v1/replicas/${vmId}/failover/cancel`,
      );
      assert.equal(cancelled.state, 'receiving');
      assert.equal(cancelled.resumeEpoch, 1);
      await assert.rejects(vmStatus(lab, 'host-b', vmId), /no VM/, `${where}: the recovery VM is gone`);
      assert.equal((await replicaView(lab, vmId)).epoch, 1, `${where}: the epoch stays raised`);
    } else {
      const before = (await vmStatus(lab, 'host-b', vmId)).guest?.lastWrittenSeq ?? 0;
      const committed = await b.client.post<FailoverView>(`/v1/replicas/${vmId}/failover/commit`);
      assert.equal(committed.state, 'failed-over');
      const disk = await b.client.get<{ diskId: string; sizeBytes: number }>(`/v1/disks/${diskId}`);
      assert.equal(disk.sizeBytes, DISK_BYTES, `${where}: the recovery disk is an ordinary disk of host B`);
      await assert.rejects(replicaView(lab, vmId), /no replica/, `${where}: the other points are gone`);
      await waitFor(`${where}: the VM keeps writing after the commit`, async () => {
        const s = await vmStatus(lab, 'host-b', vmId);
        return s.state === 'running' && (s.guest?.lastWrittenSeq ?? 0) > before + 20;
      });
      await b.client.post(`/v1/vms/${vmId}/power-off`);
    }

    // the old primary comes back and is fenced
    await lab.start('host-a');
    await waitFor(
      `${where}: host A's relationship is fenced`,
      async () => {
        const rel = await lab.host('host-a').client.get<RelationshipView>(`/v1/relationships/${vmId}`);
        return (
          rel.report.lastError?.code === 'SECONDSITE_ERR_STALE_EPOCH' && rel.definition.state === 'fenced'
        );
      },
      30_000,
    );
    await assert.rejects(
      lab.host('host-a').client.post(`/v1/vms/${vmId}/start`),
      /was failed over to host-b/,
      `${where}: the old primary refuses to start the VM: never two writable copies`,
    );
    if (op === 'cancel') {
      // back to protected: the primary continues at the epoch the cancelled failover left
      await lab.host('host-a').client.post(`/v1/relationships/${vmId}/resume`, { epoch: 1 });
      await waitFor(`${where}: replication resumes at epoch 1 after the cancel`, async () => {
        const latest = (await replicaView(lab, vmId)).latestPoint;
        return latest !== null && latest.epoch === 1;
      });
    }
    let reverseNote = '';
    if (op === 'commit') {
      // reverse replication: host A's copy (with the writes it never shipped) becomes the replica, and
      // host B sends only what differs: the chunks written on B since the failover plus A's unshipped
      const b0 = await logOf(await diskFile(lab, 'host-b', diskId));
      await lab.host('host-a').client.post(`/v1/replicas/${vmId}/seed`, { diskIds: [diskId], epoch: 1 });
      await b.client.post('/v1/relationships', {
        vmId,
        diskIds: [diskId],
        replica: { hostId: 'host-a', address: '127.0.0.1', port: lab.host('host-a').replicationPort },
        policy: { copyFrequencySeconds: 900, chunkBytes: CHUNK_BYTES },
        epoch: 1,
      });
      const reversed = await waitFor(`${where}: the first reverse point on host A`, async () => {
        const v = await lab.host('host-a').client.get<ReplicaView>(`/v1/replicas/${vmId}`);
        return v.latestPoint !== null && v.latestPoint.cycleId !== 'seed' ? v : null;
      });
      const sent = (await b.client.get<RelationshipView>(`/v1/relationships/${vmId}`)).report.bytes
        .logicalSent;
      const differs = chunksOfRecords(b0, bootSeq, Math.max(b0.lastSeq, onA.seq));
      const bound = 1.1 * differs + CHUNK_BYTES;
      assert.ok(sent <= bound, `${where}: reverse sent ${sent} > ${bound} (chunks that differ: ${differs})`);
      // B's VM is off: the reverse point is B's disk, byte for byte
      const opened = await openLatestPoint(
        lab,
        vmId,
        [diskId],
        (p) => p.sequence >= (reversed.latestPoint?.sequence ?? 0),
        'host-a',
      );
      try {
        const point = await opened.clients[0]!.read(0, DISK_BYTES);
        assert.ok(
          point.equals(await diskFile(lab, 'host-b', diskId)),
          `${where}: reverse point differs from B`,
        );
      } finally {
        await opened.close();
      }
      reverseNote = `, reverse sent ${sent} bytes (${differs} bytes of chunks differ)`;
    }
    log.push(
      `trial ${i}: ${op}, recovered seq ${bootSeq} of ${onA.seq} (lost ${lostRecords} records, ~${lossMs} ms)${reverseNote}`,
    );
  }
  const sorted = [...lossesMs].sort((x, y) => x - y);
  console.log(log.join('\n'));
  console.log(
    `unplanned failover data loss over ${trials} trials (seed ${seed}): p50 ${percentile(sorted, 50)} ms, p99 ${percentile(sorted, 99)} ms, max ${sorted.at(-1)} ms`,
  );
});

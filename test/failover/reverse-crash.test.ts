/**
 * kill -9 of either host agent at random moments of reverse replication and failback (failover.md
 * sections 8-9). Each chain: a guest VM on host A fails over to host B (planned, committed), then eight
 * crash cases, each an operation with a random agent killed at a random moment, the agent restarted
 * and the operation re-issued (every one is idempotent):
 *   1 `replica seed` on A (its disks become the reverse replica's seed)
 *   2 `replication enable --epoch` on B (its first cycle is a digest resync into A's seed)
 *   3 `failover prepare` on B (failback: shut down, ship the last cycle)
 *   4 `failover start` on A at that point, 5 `commit` on A
 *   6 `replica seed` on B, 7 `replication enable --epoch` on A (reverse again)
 *   8 `failover prepare` on A (the next planned failover: its final point must equal A's disk)
 * Checked after every case: a monitor sampling both hosts never saw the VM's guest alive on both
 * (never two writable primaries); no `seed.meta` / `promote.meta` intent, `.promoted` directory or
 * NBD export that nothing refers to is left; the VM runs where the step says. The seeds hold exactly
 * the old disks; each reverse relationship reaches a point at its epoch, sending at most what differs
 * (no full copy); every retained point of the reverse replica passes the guest log validator; at the
 * quiesced moments (prepare) the final point equals the primary's disk byte for byte.
 * SECONDSITE_REVERSE_CRASH_CHAINS sets the chains (default 3, 8 cases each), SECONDSITE_SEED the seed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { Rng, seedFrom } from '../../src/domain/random.js';
import type { HostStatus } from '../../src/host/agent/host-agent.js';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import type { ReplicaView } from '../../src/host/agent/replica-service.js';
import type { FailoverView } from '../../src/host/failover/failover-service.js';
import type { VmStatus } from '../../src/host/vm/vm-driver.js';
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
import { checkClean, running, TwoPrimariesMonitor, type HostId } from './crash-checks.js';

const cleanups = cleanupsAfterAll();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const DISK_BYTES = 8 * MiB;
const other = (h: HostId): HostId => (h === 'host-a' ? 'host-b' : 'host-a');

/** Reads every retained point of the reverse replica on `hostId`; each must hold a valid guest log. */
async function validateRetainedPoints(
  lab: HostLab,
  hostId: HostId,
  vmId: string,
  where: string,
): Promise<ReplicaView> {
  const view = await lab.host(hostId).client.get<ReplicaView>(`/v1/replicas/${vmId}`);
  for (const p of view.points) {
    const opened = await openPoint(lab, vmId, p.pointId, [`${vmId}-d0`], hostId);
    try {
      const image = await opened.clients[0]!.read(0, DISK_BYTES);
      await logOf(image).catch((e: unknown) => {
        throw new Error(`${where}: point ${p.pointId} (${p.cycleId}) on ${hostId}: ${(e as Error).message}`);
      });
    } finally {
      await opened.close();
    }
  }
  return view;
}

async function pointHash(lab: HostLab, hostId: HostId, vmId: string, pointId: string): Promise<string> {
  const opened = await openPoint(lab, vmId, pointId, [`${vmId}-d0`], hostId);
  try {
    return sha256(await opened.clients[0]!.read(0, DISK_BYTES));
  } finally {
    await opened.close();
  }
}

test('kill -9 of either agent during reverse replication and failback: completes or clean, never two primaries', async () => {
  const testStartMs = Date.now();
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 8080);
  const chains = Number(process.env['SECONDSITE_REVERSE_CRASH_CHAINS'] ?? 3);
  const rng = new Rng(seed);
  const { lab, cleanup } = await twoHostLab('ss-reverse-crash-', { mutual: true });
  cleanups.push(cleanup);
  const log: string[] = [];
  const outcomes = { before: 0, after: 0 };
  let cases = 0;

  try {
    for (let c = 0; c < chains; c++) {
      const vmId = `w${c}`;
      const diskId = `${vmId}-d0`;
      await protectedVm(lab, vmId, { recordsPerSec: 100, diskBytes: DISK_BYTES });
      const monitor = new TwoPrimariesMonitor(lab, vmId);
      cleanups.push(() => monitor.stop());
      await sleep(500);

      /**
       * Runs `op`, kills a random one of `victims` after a random delay below `maxDelayMs`, restarts it,
       * and returns what the interrupted call answered.
       */
      const crash = async (
        name: string,
        victims: HostId[],
        maxDelayMs: number,
        op: () => Promise<unknown>,
        /** Asked while the victim is down: did the operation complete before the kill? */
        probe?: (victim: HostId) => Promise<'before' | 'after'>,
      ): Promise<{ where: string; victim: HostId; outcome: (found: 'before' | 'after') => void }> => {
        const victim = rng.pick(victims);
        const delayMs = rng.int(maxDelayMs);
        const startedMs = Date.now();
        const call = op().then(
          () => `answered after ${Date.now() - startedMs} ms`,
          (e: unknown) => `failed: ${(e as Error).message.slice(0, 100)}`,
        );
        await sleep(delayMs);
        await lab.kill(victim);
        const probed = probe ? await probe(victim) : null;
        // restarted before the call is awaited: a call to the other host may be waiting for this one
        await lab.start(victim);
        const answered = await call;
        cases++;
        const where = `seed ${seed} chain ${c} ${name} (${victim} killed after ${delayMs} ms; call ${answered})`;
        const line = log.push(`+${Math.round((Date.now() - testStartMs) / 1000)} s ${where}`) - 1;
        await monitor.check(where);
        const outcome = (found: 'before' | 'after'): void => {
          outcomes[found]++;
          log[line] = `${log[line] ?? where}: found ${found}`;
        };
        if (probed) outcome(probed);
        return { where, victim, outcome };
      };

      /** Both hosts' checks after a case: one primary at most, nothing half-done. */
      const settled = async (where: string): Promise<void> => {
        await monitor.check(where);
        assert.deepEqual(monitor.violations, [], where);
        await checkClean(lab, where);
      };

      /** The VM runs on `on` (its guest answers) and not on the other host. */
      const runsOnlyOn = async (on: HostId, where: string): Promise<VmStatus> => {
        const s = await guestRunning(lab, on, vmId);
        const elsewhere = await vmStatus(lab, other(on), vmId).catch(() => undefined);
        assert.ok(!running(elsewhere), `${where}: the VM also runs on ${other(on)}`);
        return s;
      };

      /**
       * Until `on`'s relationship is replicating: a planned failover needs it, and the state follows a
       * new (reverse) relationship's first committed cycle, which the replica may show a moment before.
       */
      const replicatingOn = async (on: HostId, where: string): Promise<void> => {
        await waitFor(
          `${where}: ${vmId} replicating on ${on}`,
          async () => {
            const rel = await lab.host(on).client.get<RelationshipView>(`/v1/relationships/${vmId}`);
            return rel.protectionState === 'replicating' ? rel : null;
          },
          60_000,
        );
      };

      /** Planned failover without a crash: prepare on `from`, failover + commit on `to`. */
      const plannedFailover = async (from: HostId, to: HostId): Promise<number> => {
        const prepared = await lab
          .host(from)
          .client.post<{ finalPoint: { pointId: string } }>(`/v1/relationships/${vmId}/prepare-failover`, {
            timeoutMs: 10_000,
          });
        await lab
          .host(to)
          .client.post(`/v1/replicas/${vmId}/failover`, { pointId: prepared.finalPoint.pointId });
        await lab.host(to).client.post(`/v1/replicas/${vmId}/failover/commit`);
        return (await guestRunning(lab, to, vmId)).guest?.bootSeq ?? 0;
      };

      /** Seed on the old primary, crashed once and re-issued: the seed point is exactly its old disk. */
      const seedCase = async (name: string, oldPrimary: HostId, epoch: number): Promise<void> => {
        const image = sha256(await diskFile(lab, oldPrimary, diskId));
        const body = { diskIds: [diskId], epoch };
        const { where, outcome } = await crash(name, [oldPrimary, oldPrimary, other(oldPrimary)], 25, () =>
          lab.host(oldPrimary).client.post(`/v1/replicas/${vmId}/seed`, body),
        );
        const disks = (await lab.host(oldPrimary).client.get<HostStatus>('/v1/status')).disks;
        const seeded = await lab
          .host(oldPrimary)
          .client.get<ReplicaView>(`/v1/replicas/${vmId}`)
          .catch(() => null);
        assert.ok(
          disks.some((d) => d.diskId === diskId) || seeded !== null,
          `${where}: the disk is neither on ${oldPrimary} nor in its replica`,
        );
        outcome(seeded === null ? 'before' : 'after');
        await runsOnlyOn(other(oldPrimary), where);
        const view = await lab.host(oldPrimary).client.post<ReplicaView>(`/v1/replicas/${vmId}/seed`, body);
        assert.deepEqual(
          view.points.map((p) => p.cycleId),
          ['seed'],
          `${where}: re-issued`,
        );
        assert.equal(view.epoch, epoch, `${where}: the seed's epoch`);
        assert.equal(
          await pointHash(lab, oldPrimary, vmId, view.points[0]!.pointId),
          image,
          `${where}: the seed point is ${oldPrimary}'s old disk`,
        );
        const left = (await lab.host(oldPrimary).client.get<HostStatus>('/v1/status')).disks;
        assert.ok(
          !left.some((d) => d.diskId === diskId),
          `${where}: the disk left ${oldPrimary}'s disk list`,
        );
        await settled(where);
      };

      /**
       * Reverse replication enabled on the new primary at `epoch`, crashed once during its first
       * (resync) cycle and re-issued: a point at that epoch arrives, sending at most what differs.
       */
      const enableCase = async (
        name: string,
        newPrimary: HostId,
        epoch: number,
        bootSeq: number,
      ): Promise<void> => {
        const replica = other(newPrimary);
        const body = {
          vmId,
          diskIds: [diskId],
          replica: { hostId: replica, address: '127.0.0.1', port: lab.host(replica).replicationPort },
          policy: { copyFrequencySeconds: 900, chunkBytes: CHUNK_BYTES },
          epoch,
        };
        // before: the first (resync) cycle had not committed when the victim died; after: it had
        const { where, victim } = await crash(
          name,
          [newPrimary, newPrimary, replica],
          150,
          () => lab.host(newPrimary).client.post('/v1/relationships', body),
          async (down) => {
            if (down === newPrimary) {
              const v = await lab.host(replica).client.get<ReplicaView>(`/v1/replicas/${vmId}`);
              return v.latestPoint?.cycleId === 'seed' ? 'before' : 'after';
            }
            const rel = await lab
              .host(newPrimary)
              .client.get<RelationshipView>(`/v1/relationships/${vmId}`)
              .catch(() => null);
            return rel?.report.lastPoint ? 'after' : 'before';
          },
        );
        await lab.host(newPrimary).client.post('/v1/relationships', body);
        const view = await waitFor(
          `${where}: the first reverse point on ${replica}`,
          async () => {
            const v = await lab.host(replica).client.get<ReplicaView>(`/v1/replicas/${vmId}`);
            return v.latestPoint !== null && v.latestPoint.cycleId !== 'seed' ? v : null;
          },
          60_000,
        );
        assert.equal(view.latestPoint?.epoch, epoch, `${where}: the reverse point's epoch`);
        await runsOnlyOn(newPrimary, where);
        // what the reverse sent (since the new primary's agent started, when it was the one killed)
        const rel = await lab.host(newPrimary).client.get<RelationshipView>(`/v1/relationships/${vmId}`);
        const guest = (await vmStatus(lab, newPrimary, vmId)).guest;
        assert.ok(guest, where);
        const image = await diskFile(lab, newPrimary, diskId);
        const changed = chunksOfRecords(await logOf(image), bootSeq, guest.lastWrittenSeq);
        const bound = 1.1 * changed + CHUNK_BYTES;
        const sent = rel.report.bytes.logicalSent;
        log.push(
          `  sent ${sent} bytes for ${changed} bytes of chunks written since the failover (${victim} killed)`,
        );
        assert.ok(sent <= bound, `${where}: sent ${sent} > ${bound}: more than what differs`);
        assert.ok(sent < DISK_BYTES / 4, `${where}: no full copy`);
        await validateRetainedPoints(lab, replica, vmId, where);
        await settled(where);
      };

      /**
       * Planned failover back, crashed once during `prepare` on `from`: re-issued, the final point (the
       * VM is off) equals `from`'s disk and its guest log is valid.
       */
      const prepareCase = async (
        name: string,
        from: HostId,
      ): Promise<{ pointId: string; lastSeq: number }> => {
        const to = other(from);
        await replicatingOn(from, `seed ${seed} chain ${c} ${name}: before`);
        const { where, outcome } = await crash(name, [from, from, to], 250, () =>
          lab.host(from).client.post(`/v1/relationships/${vmId}/prepare-failover`, { timeoutMs: 10_000 }),
        );
        const state = (await lab.host(from).client.get<RelationshipView>(`/v1/relationships/${vmId}`))
          .definition.state;
        assert.ok(state === 'enabled' || state === 'prepared', `${where}: relationship ${state}`);
        outcome(state === 'prepared' ? 'after' : 'before');
        // killed before its first cycle recorded the initial replication done: the next cycle does
        if (state === 'enabled') await replicatingOn(from, where);
        const prepared = await lab
          .host(from)
          .client.post<{ finalPoint: { pointId: string } }>(`/v1/relationships/${vmId}/prepare-failover`, {
            timeoutMs: 10_000,
          });
        assert.ok(!running(await vmStatus(lab, from, vmId)), `${where}: the VM is off on ${from}`);
        const primary = await diskFile(lab, from, diskId);
        assert.equal(
          await pointHash(lab, to, vmId, prepared.finalPoint.pointId),
          sha256(primary),
          `${where}: the final point equals ${from}'s disk`,
        );
        await validateRetainedPoints(lab, to, vmId, where);
        await settled(where);
        return { pointId: prepared.finalPoint.pointId, lastSeq: (await logOf(primary)).lastSeq };
      };

      // A -> B, committed; the VM writes on B
      const bootSeqB = await plannedFailover('host-a', 'host-b');
      await sleep(300);

      // 1-2: reverse replication B -> A
      await seedCase('seed on A', 'host-a', 1);
      await enableCase('enable B -> A', 'host-b', 1, bootSeqB);
      await sleep(300);

      // 3-5: failback B -> A
      const final = await prepareCase('failback prepare on B', 'host-b');
      const fo = await crash('failback failover on A', ['host-a', 'host-a', 'host-b'], 300, () =>
        lab.host('host-a').client.post(`/v1/replicas/${vmId}/failover`, { pointId: final.pointId }),
      );
      let view = await lab.host('host-a').client.get<FailoverView>(`/v1/replicas/${vmId}/failover`);
      assert.ok(
        view.state === 'receiving' || view.state === 'failover-pending-commit',
        `${fo.where}: state ${view.state}`,
      );
      if (view.state === 'receiving') assert.ok(!running(await vmStatus(lab, 'host-a', vmId)), fo.where);
      fo.outcome(view.state === 'receiving' ? 'before' : 'after');
      view = await lab.host('host-a').client.post<FailoverView>(`/v1/replicas/${vmId}/failover`, {
        pointId: final.pointId,
      });
      assert.equal(view.state, 'failover-pending-commit', `${fo.where}: re-issued`);
      assert.equal(view.pointId, final.pointId, `${fo.where}: at the final point`);
      const recovered = await runsOnlyOn('host-a', fo.where);
      assert.ok((recovered.guest?.bootSeq ?? 0) >= final.lastSeq, `${fo.where}: no record lost`);
      await settled(fo.where);

      const cm = await crash('failback commit on A', ['host-a', 'host-a', 'host-b'], 60, () =>
        lab.host('host-a').client.post(`/v1/replicas/${vmId}/failover/commit`),
      );
      view = await lab.host('host-a').client.get<FailoverView>(`/v1/replicas/${vmId}/failover`);
      assert.ok(
        view.state === 'failover-pending-commit' || view.state === 'failed-over',
        `${cm.where}: state ${view.state}`,
      );
      cm.outcome(view.state === 'failed-over' ? 'after' : 'before');
      view = await lab.host('host-a').client.post<FailoverView>(`/v1/replicas/${vmId}/failover/commit`);
      assert.equal(view.state, 'failed-over', `${cm.where}: re-issued`);
      const epochA = view.epoch;
      const committed = await runsOnlyOn('host-a', cm.where);
      assert.ok((committed.guest?.bootSeq ?? 0) >= final.lastSeq, `${cm.where}: no record lost`);
      await lab.host('host-a').client.get(`/v1/disks/${diskId}`);
      await assert.rejects(
        lab.host('host-a').client.get(`/v1/replicas/${vmId}`),
        /no replica/,
        `${cm.where}: the replica store is gone after the commit`,
      );
      await settled(cm.where);
      await sleep(300);

      // 6-7: reverse again, A -> B
      await seedCase('seed on B', 'host-b', epochA);
      // B's seed is its disk at the failback's final point: what differs was written after final.lastSeq
      // (the guest's own boot record is later when a kill restarted it after the commit)
      await enableCase('enable A -> B', 'host-a', epochA, final.lastSeq);

      // 8: planned failover prepared again on A, at a quiesced moment: the final point is A's disk
      await prepareCase('prepare on A', 'host-a');
      await monitor.stop();
      assert.deepEqual(monitor.violations, [], `seed ${seed} chain ${c}`);
      // the monitor could tell: it saw the guest run on each host in turn
      assert.ok(
        monitor.seenRunning['host-a'] > 0 && monitor.seenRunning['host-b'] > 0,
        `seed ${seed} chain ${c}: the monitor saw the guest ${JSON.stringify(monitor.seenRunning)}`,
      );
    }
  } finally {
    // printed on failure too: the cases so far, with where each kill landed
    console.log(log.join('\n'));
  }
  console.log(
    `reverse/failback crash cases: ${cases} (seed ${seed}; ${outcomes.before} found before the operation, ${outcomes.after} after)`,
  );
  assert.equal(cases, chains * 8);
});

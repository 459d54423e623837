/**
 * kill -9 of either host agent at a random moment of the one-command planned failover with
 * `--reverse` (failover.md section 7.2): host A (the orchestrator) or host B (the peer) is killed
 * while A shuts the VM down, ships, asks B to fail over and commit, seeds and asks B to replicate
 * back; the killed agent is restarted and the same command is run again until it succeeds. Checked
 * after every case: the command finished (the VM runs on B only, B replicates back into A's seeded
 * replica at the failover's epoch and a reverse point arrives), a monitor never saw the guest alive on
 * both hosts, the recovered guest's log validates and holds every record A's guest had made durable
 * before the command, and nothing half-done is left on either host.
 * SECONDSITE_PLANNED_CRASH_CASES sets the cases (default 8), SECONDSITE_SEED the seed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, seedFrom } from '../../src/domain/random.js';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import type { ReplicaView } from '../../src/host/agent/replica-service.js';
import type { PlannedFailoverResult } from '../../src/host/failover/peer-failover.js';
import { cleanupsAfterAll, MiB, twoHostLab, waitFor } from '../host/fixtures.js';
import { checkClean, type HostId, TwoPrimariesMonitor } from './crash-checks.js';
import { diskFile, guestRunning, logOf, protectedVm, vmStatus } from './failover-fixtures.js';

const cleanups = cleanupsAfterAll();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const DISK_BYTES = 8 * MiB;

test('kill -9 of either agent during failover planned --reverse: re-run completes, never two primaries', async () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 7272);
  const cases = Number(process.env['SECONDSITE_PLANNED_CRASH_CASES'] ?? 8);
  const rng = new Rng(seed);
  const { lab, cleanup } = await twoHostLab('ss-plannedcrash-', { mutual: true });
  cleanups.push(cleanup);
  const a = lab.host('host-a');
  const b = lab.host('host-b');
  let killedBeforeDone = 0;
  for (let i = 0; i < cases; i++) {
    const vmId = `pc${i}`;
    const victim: HostId = rng.chance(0.5) ? 'host-a' : 'host-b';
    const delayMs = rng.int(1500); // the whole command takes about 1-3 s here
    const where = `seed ${seed} case ${i} (kill ${victim} after ${delayMs} ms)`;
    await protectedVm(lab, vmId, { recordsPerSec: 100, diskBytes: DISK_BYTES });
    await sleep(500);
    const durableBefore = (await vmStatus(lab, 'host-a', vmId)).guest?.lastDurableSeq ?? 0;
    const monitor = new TwoPrimariesMonitor(lab, vmId);
    try {
      const first = a.client
        .post<PlannedFailoverResult>(`/v1/relationships/${vmId}/planned-failover`, {
          reverse: true,
          timeoutMs: 20_000,
        })
        .then(
          () => 'done' as const,
          () => 'failed' as const,
        );
      await Promise.race([sleep(delayMs), first]);
      const outcome = await Promise.race([first, Promise.resolve('running' as const)]);
      if (outcome !== 'done') killedBeforeDone++;
      await lab.kill(victim);
      await first;
      await lab.start(victim);
      // run it again until it succeeds (the peer may still be recovering right after its restart)
      let result: PlannedFailoverResult | null = null;
      let lastError = '';
      for (let attempt = 0; attempt < 6 && !result; attempt++) {
        try {
          result = await a.client.post<PlannedFailoverResult>(`/v1/relationships/${vmId}/planned-failover`, {
            reverse: true,
            timeoutMs: 20_000,
          });
        } catch (e) {
          lastError = (e as Error).message;
          await sleep(2000);
        }
      }
      assert.ok(result, `${where}: the re-run never completed: ${lastError}`);
      assert.equal(result.replica.state, 'failed-over', where);
      assert.ok(result.reverse, `${where}: reverse replication was set up`);

      const onB = await guestRunning(lab, 'host-b', vmId);
      assert.ok(
        (onB.guest?.bootSeq ?? 0) >= durableBefore,
        `${where}: the recovered guest starts at record ${onB.guest?.bootSeq}, before ${durableBefore} (durable on A before the command)`,
      );
      await logOf(await diskFile(lab, 'host-b', `${vmId}-d0`));
      const rel = await b.client.get<RelationshipView>(`/v1/relationships/${vmId}`);
      assert.equal(rel.definition.replica.hostId, 'host-a', where);
      assert.equal(rel.definition.epoch, result.replica.epoch, where);
      await waitFor(
        `${where}: a reverse point on host-a`,
        async () => {
          const v = await a.client.get<ReplicaView>(`/v1/replicas/${vmId}`);
          return (
            v.latestPoint !== null && v.latestPoint.cycleId !== 'seed' && v.epoch === result.replica.epoch
          );
        },
        90_000,
      );
      await monitor.check(where);
      assert.ok(
        (await vmStatus(lab, 'host-a', vmId).catch(() => null))?.state !== 'running',
        `${where}: not on A`,
      );
      await checkClean(lab, where);
    } finally {
      await monitor.stop();
    }
    assert.deepEqual(monitor.violations, [], where);
    assert.ok(monitor.seenRunning['host-b'] > 0, `${where}: the monitor saw the guest on B`);
    // keep the hosts light for the next case
    await b.client.delete(`/v1/relationships/${vmId}`);
    await b.client.post(`/v1/vms/${vmId}/power-off`);
  }
  console.log(
    `# planned failover crash cases: ${cases} (${killedBeforeDone} killed before the command completed)`,
  );
});

/**
 * The one-command planned failover (docs/design/failover.md section 7.2), through the CLI as a user
 * runs it: `secondsite host failover planned ID --reverse` on the primary shuts the VM down, ships the
 * last changes, has the replica fail over to exactly that point and commit (peer call over mutual TLS),
 * and reverses replication at once. Then failback with the same command on the new primary. Checked:
 * no record lost either way, the reverse direction sends only what differs, and the peer API refuses a
 * host that is not the relationship's primary.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSecondsiteError } from '../../src/domain/errors.js';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import type { ReplicaView } from '../../src/host/agent/replica-service.js';
import type { PlannedFailoverResult } from '../../src/host/failover/peer-failover.js';
import type { HostLab } from '../../src/lab/host-lab.js';
import { spawnSecondsite } from '../../src/testing/process/child-process.js';
import { cleanupsAfterAll, MiB, peerClient, twoHostLab, waitFor } from '../host/fixtures.js';
import { guestRunning, protectedVm } from './failover-fixtures.js';

const cleanups = cleanupsAfterAll();
const DISK_BYTES = 16 * MiB;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function plannedByCli(lab: HostLab, from: string, vmId: string): Promise<PlannedFailoverResult> {
  const child = spawnSecondsite([
    'host',
    'failover',
    'planned',
    vmId,
    '--reverse',
    '--timeout-ms',
    '20000',
    '--state-dir',
    lab.host(from).stateDir,
    '--output',
    'json',
  ]);
  const exit = await child.exited;
  assert.equal(exit.code, 0, `failover planned on ${from} failed: ${child.stderr}`);
  return JSON.parse(child.stdoutLines.join('\n')) as PlannedFailoverResult;
}

/** Waits for the first reverse point (not the seed) and checks nothing like a full copy was sent. */
async function reverseRuns(
  lab: HostLab,
  vmId: string,
  newPrimary: string,
  replica: string,
  epoch: number,
): Promise<void> {
  const view = await waitFor(
    `${newPrimary} -> ${replica}: the first reverse point`,
    async () => {
      const v = await lab.host(replica).client.get<ReplicaView>(`/v1/replicas/${vmId}`);
      return v.latestPoint !== null && v.latestPoint.cycleId !== 'seed' ? v : null;
    },
    120_000,
  );
  assert.equal(view.epoch, epoch);
  const rel = await lab.host(newPrimary).client.get<RelationshipView>(`/v1/relationships/${vmId}`);
  assert.equal(rel.definition.replica.hostId, replica);
  assert.ok(
    rel.report.bytes.logicalSent < DISK_BYTES / 4,
    `${newPrimary} -> ${replica}: sent ${rel.report.bytes.logicalSent} bytes, no full copy`,
  );
}

test('failover planned --reverse: zero loss, replication reversed at once; failback the same way', async () => {
  const { lab, cleanup } = await twoHostLab('ss-planned1-', { mutual: true });
  cleanups.push(cleanup);
  await protectedVm(lab, 'q1', { recordsPerSec: 100, diskBytes: DISK_BYTES });

  // the peer API acts only for the relationship's primary, and only in a state that allows it
  const bToA = await peerClient(lab, 'host-b', 'host-a');
  await assert.rejects(
    bToA.post('/peer/v1/replicas/q1/planned-failover', { pointId: 'rp-1' }),
    (e: unknown) => isSecondsiteError(e, 'SECONDSITE_ERR_FORBIDDEN'),
    'host-b is not the primary of anything host-a keeps',
  );
  const aToB = await peerClient(lab, 'host-a', 'host-b');
  await assert.rejects(
    aToB.post('/peer/v1/relationships/q1/reverse', {
      address: '127.0.0.1',
      port: lab.host('host-a').replicationPort,
      policy: {},
    }),
    /state receiving.*commit the failover first/,
  );
  await sleep(1000);

  const toB = await plannedByCli(lab, 'host-a', 'q1');
  assert.equal(toB.replica.state, 'failed-over');
  assert.equal(toB.replica.epoch, 1);
  assert.ok(toB.guestAtShutdown, 'the guest reported its last durable record at shutdown');
  const onB = await guestRunning(lab, 'host-b', 'q1');
  assert.equal(onB.guest?.bootSeq, toB.guestAtShutdown.lastDurableSeq, 'A -> B: no record lost');
  await assert.rejects(lab.host('host-a').client.post('/v1/vms/q1/start'), /is a replica on this host now/);
  await reverseRuns(lab, 'q1', 'host-b', 'host-a', 1);
  await sleep(1500);

  const toA = await plannedByCli(lab, 'host-b', 'q1');
  assert.equal(toA.replica.epoch, 2);
  assert.ok(toA.guestAtShutdown);
  const onA = await guestRunning(lab, 'host-a', 'q1');
  assert.equal(onA.guest?.bootSeq, toA.guestAtShutdown.lastDurableSeq, 'B -> A: no record lost');
  assert.ok((onA.guest?.bootSeq ?? 0) > (onB.guest?.bootSeq ?? 0), 'the records written on B came back');
  await reverseRuns(lab, 'q1', 'host-a', 'host-b', 2);

  // running it again after it finished answers the same (its answer may have been lost)
  const replay = await plannedByCli(lab, 'host-b', 'q1');
  assert.equal(replay.finalPoint.pointId, toA.finalPoint.pointId);

  // disable with --delete-replica: the replica host drops its points too
  const disable = spawnSecondsite([
    'host',
    'replication',
    'disable',
    'q1',
    '--delete-replica',
    '--state-dir',
    lab.host('host-a').stateDir,
  ]);
  assert.equal((await disable.exited).code, 0, disable.stderr);
  assert.match(disable.stdoutLines.join('\n'), /the replica host deleted its recovery points/);
  await assert.rejects(lab.host('host-b').client.get('/v1/replicas/q1'), /no replica|not found|NOT_FOUND/i);
  await lab.host('host-a').client.post('/v1/vms/q1/power-off');
});

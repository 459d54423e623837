/**
 * End to end on real processes: a seeded workload writes self-describing blocks to two disks of a VM
 * on host A (through our NBD server), the VM replicates continuously to host B, and every recovery
 * point sampled while the workload runs passes the recovery-point checker (no corruption, no torn or
 * missing writes from before the cut, no flushed write lost, write-order fidelity across both disks).
 * After the workload stops, the next point equals the primary's disks byte for byte.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NbdClient } from '../../src/guest/nbd-client.js';
import { seedFrom } from '../../src/domain/random.js';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import { compareImages } from '../../src/testing/checker/disk-image.js';
import { checkRecoveryPoint, formatReport } from '../../src/testing/checker/recovery-point-checker.js';
import { WorkloadGenerator } from '../../src/testing/workload/workload-generator.js';
import {
  cleanupsAfterAll,
  createDisks,
  enableReplication,
  MiB,
  openLatestPoint,
  replicaView,
  twoHostLab,
  waitFor,
  wallToMonotonicMs,
} from './fixtures.js';

const cleanups = cleanupsAfterAll();

test('continuous replication of a 2-disk VM under write load: every point passes the checker', async () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 1122);
  const { lab, cleanup } = await twoHostLab('ss-repl-e2e-');
  cleanups.push(cleanup);
  const disks = [
    { diskId: 'vm1-d0', sizeBytes: 32 * MiB },
    { diskId: 'vm1-d1', sizeBytes: 16 * MiB },
  ];
  await createDisks(lab, 'host-a', disks);
  await enableReplication(lab, { vmId: 'vm1', diskIds: disks.map((d) => d.diskId) });

  const a = lab.host('host-a');
  const clients = await Promise.all(
    disks.map((d) => NbdClient.connect({ socketPath: a.nbdSocket, exportName: d.diskId })),
  );
  cleanups.push(async () => {
    for (const c of clients) await c.close();
  });
  const gen = new WorkloadGenerator({
    seed,
    disks: disks.map((d, i) => ({ diskId: i, sizeBytes: d.sizeBytes, target: clients[i]! })),
    durationMs: 8000,
    queueDepth: 8,
    flushProbability: 0.4,
    opsPerSecond: 1500,
  });
  const running = gen.run();

  const checkedPoints: string[] = [];
  while (
    !(await Promise.race([
      running.then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), 600)),
    ]))
  ) {
    const view = await replicaView(lab, 'vm1').catch(() => null);
    if (!view?.latestPoint || checkedPoints.includes(view.latestPoint.pointId)) continue;
    const point = await openLatestPoint(
      lab,
      'vm1',
      disks.map((d) => d.diskId),
    );
    const latest = point.point;
    try {
      const report = await checkRecoveryPoint({
        history: gen.history,
        disks: point.images,
        cutTimeMs: wallToMonotonicMs(latest.cutWallMs),
      });
      assert.ok(report.ok, `seed ${seed}, point ${latest.pointId}: ${formatReport(report)}`);
      checkedPoints.push(latest.pointId);
    } finally {
      await point.close();
    }
  }
  const result = await running;
  assert.notEqual(result.stoppedBy, 'error', `seed ${seed}: workload failed: ${String(result.error)}`);
  assert.ok(result.epochs > 50, `the workload ran (${result.epochs} epochs)`);
  assert.ok(checkedPoints.length >= 2, `seed ${seed}: checked ${checkedPoints.length} points while writing`);

  // Quiesce: flush, then wait for a point cut after the flush; it must equal the primary exactly.
  for (const c of clients) await c.flush();
  const quiescedWallMs = Date.now();
  await waitFor('a point cut after the workload stopped', async () => {
    const v = await replicaView(lab, 'vm1');
    return v.latestPoint && v.latestPoint.cutWallMs > quiescedWallMs ? v.latestPoint : null;
  });
  const point = await openLatestPoint(
    lab,
    'vm1',
    disks.map((d) => d.diskId),
    (p) => p.cutWallMs > quiescedWallMs,
  );
  try {
    for (const [i, d] of disks.entries()) {
      const cmp = await compareImages(
        { diskId: i, read: (o, l) => clients[i]!.read(o, l) },
        point.images[i]!,
        d.sizeBytes,
      );
      assert.ok(cmp.equal, `seed ${seed}: disk ${d.diskId} differs at ${cmp.firstDifferenceBytes}`);
    }
  } finally {
    await point.close();
  }

  const rel = await a.client.get<RelationshipView>('/v1/relationships/vm1');
  assert.equal(rel.report.health.level, 'Normal', JSON.stringify(rel.report.health));
  assert.ok(rel.report.bytes.logicalSent > 0);
  assert.ok(rel.report.lastPoint !== null);

  // Retention (the policy's hours, sent in HELLO) runs after each commit: all these points fall in
  // one clock hour, so only the latest (and the newest of the hour, the same one) remains.
  const retained = await replicaView(lab, 'vm1');
  assert.ok(retained.points.length <= 2, `retention kept ${retained.points.length} points of one hour`);

  const metricsA = await a.client.text('/metrics');
  assert.match(metricsA, /^secondsite_replication_lag_seconds\{relationship="vm1"\} \d/m);
  assert.match(metricsA, /^secondsite_replication_cycles_total\{relationship="vm1",result="ok"\} [1-9]/m);
  assert.match(metricsA, /^secondsite_replication_health\{relationship="vm1"\} 0$/m);
  const metricsB = await lab.host('host-b').client.text('/metrics');
  assert.match(metricsB, /^secondsite_replica_points\{relationship="vm1"\} [1-9]/m);
  assert.match(metricsB, /^secondsite_replica_undo_files\{relationship="vm1"\} \d+$/m);
  assert.match(metricsB, /^secondsite_replica_undo_longest_list_files\{relationship="vm1"\} \d+$/m);
  assert.match(metricsB, /^secondsite_replica_undo_background_errors_total\{relationship="vm1"\} 0$/m);
  assert.equal(retained.undo.backgroundErrors, 0);
});

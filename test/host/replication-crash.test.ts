/**
 * Crash tests on real processes (data-safety.md 2.6 item 3): while a seeded workload writes to a
 * 2-disk VM on host A and it replicates continuously to host B, the sender (host A's agent) or the
 * receiver (host B's agent) is killed with SIGKILL at a random moment and restarted. After every crash:
 *   - the first point cut after the restart passes the recovery-point checker;
 *   - replication resumes by itself; after a sender crash (unclean stop of change tracking) the next
 *     cycle is a checksum-compared resync that sends only differing chunks, never a full copy: what
 *     it sends lies within the chunks the workload changed since the last point before the kill;
 * and at the end the quiesced point equals the primary byte for byte.
 * SECONDSITE_CRASH_CASES sets the number of cases (default 16), SECONDSITE_SEED the seed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, seedFrom } from '../../src/domain/random.js';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import { compareImages } from '../../src/testing/checker/disk-image.js';
import { checkRecoveryPoint, formatReport } from '../../src/testing/checker/recovery-point-checker.js';
import { BLOCK_SIZE_BYTES } from '../../src/testing/workload/block-format.js';
import { WorkloadGenerator } from '../../src/testing/workload/workload-generator.js';
import type { HistoryOp } from '../../src/testing/workload/write-history.js';
import {
  cleanupsAfterAll,
  createDisks,
  enableReplication,
  MiB,
  openLatestPoint,
  ReconnectingTarget,
  replicaView,
  twoHostLab,
  waitFor,
  wallToMonotonicMs,
} from './fixtures.js';

const cleanups = cleanupsAfterAll();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const CHUNK_BYTES = 64 * 1024;

/** Bytes of the transfer chunks touched by any op submitted at or after `sinceMs` (monotonic). */
function changedChunkBytes(ops: readonly HistoryOp[], sinceMs: number, chunkBytes: number): number {
  const chunks = new Set<string>();
  for (const op of ops) {
    if (op.tSubmitMs < sinceMs) continue;
    const first = Math.floor((op.lba * BLOCK_SIZE_BYTES) / chunkBytes);
    const last = Math.floor(((op.lba + op.blocks) * BLOCK_SIZE_BYTES - 1) / chunkBytes);
    for (let c = first; c <= last; c++) chunks.add(`${op.diskId}:${c}`);
  }
  return chunks.size * chunkBytes;
}

test('kill -9 of sender or receiver at random moments: every point after restart passes the checker', async () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 4242);
  const cases = Number(process.env['SECONDSITE_CRASH_CASES'] ?? 16);
  const rng = new Rng(seed);
  const { lab, cleanup } = await twoHostLab('ss-repl-crash-');
  cleanups.push(cleanup);
  const disks = [
    { diskId: 'vm1-d0', sizeBytes: 64 * MiB },
    { diskId: 'vm1-d1', sizeBytes: 32 * MiB },
  ];
  const diskIds = disks.map((d) => d.diskId);
  await createDisks(lab, 'host-a', disks);
  await enableReplication(lab, { vmId: 'vm1', diskIds, chunkBytes: CHUNK_BYTES });
  const a = lab.host('host-a');
  const targets = disks.map((d) => new ReconnectingTarget(a.nbdSocket, d.diskId));
  cleanups.push(async () => {
    for (const t of targets) await t.close();
  });
  const gen = new WorkloadGenerator({
    seed,
    disks: disks.map((d, i) => ({ diskId: i, sizeBytes: d.sizeBytes, target: targets[i]! })),
    queueDepth: 8,
    flushProbability: 0.4,
    opsPerSecond: 150,
  });
  const running = gen.run();
  cleanups.push(async () => {
    gen.stop();
    await running;
  });

  await waitFor('the initial replication', async () => (await replicaView(lab, 'vm1')).latestPoint, 60_000);
  const log: string[] = [];
  for (let i = 0; i < cases; i++) {
    const victim = rng.chance(0.5) ? 'host-a' : 'host-b';
    const waitMs = 100 + rng.int(1500);
    const downMs = rng.int(500);
    const where = `seed ${seed} case ${i} (kill ${victim} after ${waitMs} ms, down ${downMs} ms)`;
    await sleep(waitMs);
    const lastCutBeforeKill = (await replicaView(lab, 'vm1')).latestPoint?.cutWallMs ?? 0;
    await lab.kill(victim);
    await sleep(downMs);
    const restartedWallMs = Date.now();
    await lab.start(victim);
    const startedMs = Date.now() - restartedWallMs;

    await waitFor(
      `${where}: a point cut after the restart`,
      async () => {
        const v = await replicaView(lab, 'vm1');
        return v.latestPoint && v.latestPoint.cutWallMs > restartedWallMs ? v.latestPoint : null;
      },
      60_000,
    );
    const pointMs = Date.now() - restartedWallMs;
    const opened = await openLatestPoint(lab, 'vm1', diskIds, (p) => p.cutWallMs > restartedWallMs);
    const point = opened.point;
    try {
      const report = await checkRecoveryPoint({
        history: gen.history,
        disks: opened.images,
        cutTimeMs: wallToMonotonicMs(point.cutWallMs),
      });
      assert.ok(report.ok, `${where}, point ${point.pointId}: ${formatReport(report)}`);
    } finally {
      await opened.close();
    }
    if (victim === 'host-a') {
      // The first cycles after an unclean stop are a checksum-compared resync: only differing chunks
      // move. Everything sent since the restart must lie in chunks the workload touched after the last
      // point cut before the kill (2 s earlier still, for ops in flight across that cut).
      const rel = await a.client.get<RelationshipView>('/v1/relationships/vm1');
      const bound = changedChunkBytes(
        gen.history.ops,
        wallToMonotonicMs(lastCutBeforeKill) - 2000,
        CHUNK_BYTES,
      );
      const total = disks.reduce((s, d) => s + d.sizeBytes, 0);
      assert.ok(
        rel.report.bytes.logicalSent <= bound,
        `${where}: resync after restart sent ${rel.report.bytes.logicalSent} bytes, more than the ${bound} bytes of chunks changed since the last point: not only what differs`,
      );
      log.push(
        `case ${i}: sender crash, resync sent ${(rel.report.bytes.logicalSent / MiB).toFixed(1)} MiB (chunks changed since the last point ${(bound / MiB).toFixed(1)} MiB, disks ${total / MiB} MiB)`,
      );
    } else {
      log.push(
        `case ${i} (agent up ${startedMs} ms, point after ${pointMs} ms): receiver crash, point ${point.pointId} ok`,
      );
    }
  }
  gen.stop();
  const result = await running;
  assert.notEqual(result.stoppedBy, 'error', `seed ${seed}: workload failed: ${String(result.error)}`);

  for (const t of targets) await t.flush();
  const quiescedWallMs = Date.now();
  await waitFor('a point after the workload stopped', async () => {
    const v = await replicaView(lab, 'vm1');
    return v.latestPoint && v.latestPoint.cutWallMs > quiescedWallMs ? v.latestPoint : null;
  });
  const opened = await openLatestPoint(lab, 'vm1', diskIds, (p) => p.cutWallMs > quiescedWallMs);
  try {
    for (const [i, d] of disks.entries()) {
      const cmp = await compareImages(
        { diskId: i, read: (o, l) => targets[i]!.read(o, l) },
        opened.images[i]!,
        d.sizeBytes,
      );
      assert.ok(cmp.equal, `seed ${seed}: disk ${d.diskId} differs at ${cmp.firstDifferenceBytes}`);
    }
  } finally {
    await opened.close();
  }
  console.log(log.join('\n'));
});

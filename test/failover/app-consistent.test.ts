/**
 * App-consistent recovery points (DESIGN.md section 5): every `appConsistentFrequencySeconds` the host
 * quiesces the guest for the cut and tags the point app-consistent; the guest's log at such a point has
 * no torn tail (it was made consistent before the cut). A guest that does not answer (SIGSTOP) gives a
 * crash-consistent point and a warning, and is not left frozen: it writes again once it runs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateGuestLog } from '../../src/guest/app/guest-log.validator.js';
import type { ReplicaView } from '../../src/host/agent/replica-service.js';
import {
  cleanupsAfterAll,
  createDisks,
  enableReplication,
  MiB,
  openPoint,
  replicaView,
  twoHostLab,
  waitFor,
} from '../host/fixtures.js';
import { vmStatus } from './failover-fixtures.js';

const cleanups = cleanupsAfterAll();

test('app-consistent points are taken on schedule; a guest that does not answer gives a crash-consistent point', async () => {
  const { lab, cleanup } = await twoHostLab('ss-app-consistent-');
  cleanups.push(cleanup);
  const a = lab.host('host-a');
  await createDisks(lab, 'host-a', [{ diskId: 'ac-d0', sizeBytes: 8 * MiB }]);
  await a.client.post('/v1/vms', { vmId: 'ac', diskIds: ['ac-d0'], guest: { recordsPerSec: 200 } });
  await a.client.post('/v1/vms/ac/start');
  await enableReplication(lab, {
    vmId: 'ac',
    diskIds: ['ac-d0'],
    copyFrequencySeconds: 0,
    appConsistentFrequencySeconds: 5,
  });
  // retention keeps one app-consistent point per hour besides the latest, so each one is checked
  // while it is the latest (its export pins it)
  const checked = new Set<string>();
  let crashConsistentSeen = false;
  await waitFor(
    'two app-consistent points, each with a consistent guest log',
    async () => {
      const latest = (await replicaView(lab, 'ac')).latestPoint;
      if (latest?.consistency === 'crash-consistent') crashConsistentSeen = true;
      if (!latest || latest.consistency !== 'app-consistent' || checked.has(latest.pointId)) return false;
      const opened = await openPoint(lab, 'ac', latest.pointId, ['ac-d0']).catch((e: unknown) => {
        if (e instanceof Error && /RECOVERY_POINT_NOT_FOUND|no retained point/.test(e.message)) return null;
        throw e;
      });
      if (opened === null) return false; // replaced by a newer point before it could be exported
      try {
        const c = opened.clients[0]!;
        const report = await validateGuestLog((o, l) => c.read(o, l), 8 * MiB);
        assert.ok(report.valid && report.lastSeq > 0, `${latest.pointId}: ${report.problem?.message ?? ''}`);
        assert.equal(report.tornTail, false, `${latest.pointId}: an app-consistent point has no torn record`);
      } finally {
        await opened.close();
      }
      checked.add(latest.pointId);
      return checked.size >= 2;
    },
    60_000,
    50,
  );
  assert.ok(crashConsistentSeen, 'the cycles in between stay crash-consistent');

  // a guest that cannot answer: the next due app-consistent cut falls back to crash-consistent
  const pid = (await vmStatus(lab, 'host-a', 'ac')).pid;
  assert.ok(pid !== null);
  process.kill(pid, 'SIGSTOP');
  const stoppedAt = Date.now();
  try {
    await waitFor(
      'a crash-consistent point while the guest cannot answer',
      async () => {
        const v: ReplicaView = await replicaView(lab, 'ac');
        return v.points.some((p) => p.cutWallMs > stoppedAt + 5_000 && p.consistency === 'crash-consistent');
      },
      60_000,
    );
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  const before = (await vmStatus(lab, 'host-a', 'ac')).guest?.lastWrittenSeq ?? 0;
  await waitFor('the guest writes again (not left frozen)', async () => {
    const s = await vmStatus(lab, 'host-a', 'ac');
    return s.state === 'running' && (s.guest?.lastWrittenSeq ?? 0) > before + 50;
  });
  await a.client.post('/v1/vms/ac/power-off');
});

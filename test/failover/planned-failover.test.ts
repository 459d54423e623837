/**
 * Planned failover end to end (docs/design/failover.md section 7), seeded trials under write load: the
 * primary shuts its guest down and ships the last changes (`failover prepare`); the replica fails over
 * to that final point and commits. Each trial checks: the final point equals the primary's disk byte
 * for byte; the recovered guest's newest record is the primary's newest record (0 records lost); the
 * primary refuses to start the VM while prepared.
 * SECONDSITE_PLANNED_TRIALS sets the number of trials (default 10), SECONDSITE_SEED the seed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { validateGuestLog } from '../../src/guest/app/guest-log.validator.js';
import type { FailoverView } from '../../src/host/failover/failover-service.js';
import { cleanupsAfterAll, MiB, openPoint, twoHostLab } from '../host/fixtures.js';
import { guestRunning, protectedVm } from './failover-fixtures.js';

const cleanups = cleanupsAfterAll();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const DISK_BYTES = 8 * MiB;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('planned failover under write load: 0 records lost, the final point equals the primary disk', async () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 8080);
  const trials = Number(process.env['SECONDSITE_PLANNED_TRIALS'] ?? 10);
  const rng = new Rng(seed);
  const { lab, cleanup } = await twoHostLab('ss-planned-');
  cleanups.push(cleanup);
  const a = lab.host('host-a');
  const b = lab.host('host-b');
  for (let i = 0; i < trials; i++) {
    const vmId = `p${i}`;
    const where = `seed ${seed} trial ${i}`;
    const vm = await protectedVm(lab, vmId, { recordsPerSec: 200, diskBytes: DISK_BYTES });
    const diskId = vm.diskIds[0] as string;
    await sleep(500 + rng.int(1500));
    const prepared = await a.client.post<{ finalPoint: { pointId: string } }>(
      `/v1/relationships/${vmId}/prepare-failover`,
      { timeoutMs: 10_000 },
    );
    const again = await a.client.post<{ finalPoint: { pointId: string } }>(
      `/v1/relationships/${vmId}/prepare-failover`,
    );
    assert.equal(again.finalPoint.pointId, prepared.finalPoint.pointId, `${where}: prepare is idempotent`);
    await assert.rejects(a.client.post(`/v1/vms/${vmId}/start`), /prepared for a planned failover/);

    // the final point is the primary's disk, byte for byte
    const primary = await readFile(join(a.stateDir, 'storage', 'disks', `${diskId}.raw`));
    const opened = await openPoint(lab, vmId, prepared.finalPoint.pointId, [diskId]);
    let pointBytes: Buffer;
    try {
      pointBytes = await opened.clients[0]!.read(0, DISK_BYTES);
    } finally {
      await opened.close();
    }
    assert.equal(sha256(pointBytes), sha256(primary), `${where}: final point and primary disk differ`);
    const log = await validateGuestLog((o, l) => Promise.resolve(primary.subarray(o, o + l)), DISK_BYTES);
    assert.ok(log.valid && log.lastSeq > 0, `${where}: the primary's log`);

    const fo = await b.client.post<FailoverView>(`/v1/replicas/${vmId}/failover`, {
      pointId: prepared.finalPoint.pointId,
    });
    assert.equal(fo.pointId, prepared.finalPoint.pointId);
    const recovered = await guestRunning(lab, 'host-b', vmId);
    assert.equal(recovered.guest?.bootSeq, log.lastSeq, `${where}: records lost in a planned failover`);
    const committed = await b.client.post<FailoverView>(`/v1/replicas/${vmId}/failover/commit`);
    assert.equal(committed.state, 'failed-over');
    await b.client.post(`/v1/vms/${vmId}/power-off`);
  }
});

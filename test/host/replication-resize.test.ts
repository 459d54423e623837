/**
 * Growing a disk while it replicates: the relationship keeps running, the replica's disk grows, and a
 * point cut after writes beyond the old end equals the primary.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import type { ReplicaView } from '../../src/host/agent/replica-service.js';
import {
  cleanupsAfterAll,
  createDisks,
  enableReplication,
  MiB,
  replicaView,
  twoHostLab,
  waitFor,
} from './fixtures.js';

const cleanups = cleanupsAfterAll();

test('a disk grown while replicating keeps replicating, and the replica grows with it', async () => {
  const { lab, cleanup } = await twoHostLab('ss-repl-resize-');
  cleanups.push(cleanup);
  const a = lab.host('host-a');
  await createDisks(lab, 'host-a', [{ diskId: 'vm1-d0', sizeBytes: 16 * MiB }]);
  await enableReplication(lab, { vmId: 'vm1', diskIds: ['vm1-d0'] });
  await waitFor('the initial replication', async () => (await replicaView(lab, 'vm1')).latestPoint);

  await a.client.post('/v1/disks/vm1-d0/resize', { sizeBytes: 32 * MiB });
  const uri = `nbd+unix:///vm1-d0?socket=${a.nbdSocket}`;
  const io = spawnSync('qemu-io', ['-f', 'raw', '-c', 'write -P 0x3c 30M 1M', '-c', 'flush', uri], {
    encoding: 'utf8',
  });
  assert.equal(io.status, 0, io.stderr);
  const writtenMs = Date.now();

  const view = await waitFor('a point of the grown disk', async () => {
    const v: ReplicaView = await replicaView(lab, 'vm1');
    return v.latestPoint && v.latestPoint.cutWallMs > writtenMs && v.disks[0]?.sizeBytes === 32 * MiB
      ? v
      : null;
  });
  const b = lab.host('host-b');
  // 'latest': that point or a newer one (a commit in progress may drop the one just read)
  const exp = await b.client.post<{ pointId: string; disks: Array<{ nbdUri: string }> }>(
    '/v1/replicas/vm1/points/latest/export',
  );
  assert.ok(
    Number(exp.pointId.slice(3)) >= (view.latestPoint?.sequence ?? Infinity),
    `exported ${exp.pointId}, older than ${view.latestPoint?.pointId}`,
  );
  const cmp = spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', uri, exp.disks[0]?.nbdUri ?? ''], {
    encoding: 'utf8',
  });
  assert.equal(cmp.status, 0, `${cmp.stdout}${cmp.stderr}`);
});

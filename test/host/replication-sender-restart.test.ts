/**
 * Resume after a restart of the *sender* (docs/design/replication.md, "Resume after a sender
 * restart"): host A's agent is killed with SIGKILL in the middle of the initial replication of a fully
 * written disk and restarted. Its new cycle has a new id; the replica adopts what the killed cycle
 * staged, so the restarted sender sends only what was not staged yet (plus at most the in-flight
 * window) and digests for the rest, and the first point equals the disk byte for byte.
 * SECONDSITE_SEED sets the seed of the disk content and of the kill moment.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NbdClient } from '../../src/guest/nbd-client.js';
import { Rng, seedFrom } from '../../src/domain/random.js';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import {
  cleanupsAfterAll,
  createDisks,
  enableReplication,
  MiB,
  openLatestPoint,
  replicaView,
  twoHostLab,
  waitFor,
} from './fixtures.js';

const cleanups = cleanupsAfterAll();

const DISK_BYTES = 48 * MiB;
const CHUNK_BYTES = 256 * 1024;
const WINDOW_CHUNKS = 8; // the sender's default in-flight window

test('kill -9 of the sender during initial replication: the restarted sender sends only what was not staged', async () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 5150);
  const rng = new Rng(seed);
  const { lab, cleanup } = await twoHostLab('ss-sender-restart-');
  cleanups.push(cleanup);
  const a = lab.host('host-a');
  await createDisks(lab, 'host-a', [{ diskId: 'vm2-d0', sizeBytes: DISK_BYTES }]);
  const content = rng.fill(Buffer.alloc(DISK_BYTES)) as Buffer;
  const writer = await NbdClient.connect({ socketPath: a.nbdSocket, exportName: 'vm2-d0' });
  for (let at = 0; at < DISK_BYTES; at += 4 * MiB)
    await writer.write(at, content.subarray(at, at + 4 * MiB), { fua: false });
  await writer.flush();
  await writer.close();

  // rate-limited so the kill lands in the middle of the copy
  await enableReplication(lab, {
    vmId: 'vm2',
    diskIds: ['vm2-d0'],
    chunkBytes: CHUNK_BYTES,
    bandwidthLimitBytesPerSec: 12 * MiB,
  });
  const killAtBytes = Math.floor(DISK_BYTES * (0.3 + 0.4 * rng.next()));
  const doneBeforeKill = await waitFor(
    `initial replication past ${killAtBytes} bytes (seed ${seed})`,
    async () => {
      const rel = await a.client.get<RelationshipView>('/v1/relationships/vm2');
      const done = rel.report.currentCycle?.doneBytes ?? 0;
      return done >= killAtBytes ? done : null;
    },
    60_000,
    20,
  );
  await lab.kill('host-a');
  assert.equal((await replicaView(lab, 'vm2')).latestPoint, null, 'no point before the copy completes');
  await lab.start('host-a');

  await waitFor(
    `the first point after the restart (seed ${seed})`,
    async () => (await replicaView(lab, 'vm2')).latestPoint,
    60_000,
  );
  const rel = await a.client.get<RelationshipView>('/v1/relationships/vm2');
  const sentAfter = rel.report.bytes.logicalSent;
  const bound = DISK_BYTES - doneBeforeKill + (WINDOW_CHUNKS + 1) * CHUNK_BYTES;
  assert.ok(
    sentAfter <= bound,
    `after the restart the sender sent ${sentAfter} bytes; only ${DISK_BYTES - doneBeforeKill} were not yet sent before the kill (bound ${bound}, seed ${seed})`,
  );
  assert.ok(sentAfter < DISK_BYTES, 'no full copy after the restart');

  // continuous mode: pause; a cycle in flight may still commit and drop the point just read (a newer
  // one replaced it: read the latest, the disk has not changed since the first)
  await a.client.post('/v1/relationships/vm2/pause');
  const opened = await openLatestPoint(lab, 'vm2', ['vm2-d0']);
  try {
    const client = opened.clients[0] as NbdClient;
    for (let at = 0; at < DISK_BYTES; at += 4 * MiB) {
      const got = await client.read(at, 4 * MiB);
      assert.ok(
        got.equals(content.subarray(at, at + 4 * MiB)),
        `point differs in [${at}, +4 MiB) (seed ${seed})`,
      );
    }
  } finally {
    await opened.close();
  }
  console.log(
    `sender killed at ${(doneBeforeKill / MiB).toFixed(1)} MiB of ${DISK_BYTES / MiB} MiB; after the restart it sent ${(sentAfter / MiB).toFixed(1)} MiB`,
  );
});

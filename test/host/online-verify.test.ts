/**
 * Resync / online verify (DESIGN.md section 5): silent corruption of the replica (bytes changed in its
 * base image behind its back) is found by `replication resync`: the next cycle compares every chunk's
 * digest, sends only the corrupted chunk, and the new latest point equals the primary's disk again.
 */
import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
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

const DISK_BYTES = 16 * MiB;
const CHUNK_BYTES = 256 * 1024;

test('online verify finds a corrupted chunk on the replica and repairs only it', async () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 1212);
  const { lab, cleanup } = await twoHostLab('ss-verify-');
  cleanups.push(cleanup);
  const a = lab.host('host-a');
  await createDisks(lab, 'host-a', [{ diskId: 'v-d0', sizeBytes: DISK_BYTES }]);
  const content = new Rng(seed).fill(Buffer.alloc(DISK_BYTES)) as Buffer;
  const writer = await NbdClient.connect({ socketPath: a.nbdSocket, exportName: 'v-d0' });
  await writer.write(0, content, { fua: true });
  await writer.close();
  await enableReplication(lab, {
    vmId: 'v',
    diskIds: ['v-d0'],
    chunkBytes: CHUNK_BYTES,
    copyFrequencySeconds: 30,
  });
  const first = await waitFor(
    'the initial replication',
    async () => (await replicaView(lab, 'v')).latestPoint,
    60_000,
  );
  await waitFor(
    'the primary to record the initial replication as done',
    async () =>
      (await a.client.get<RelationshipView>('/v1/relationships/v')).protectionState === 'replicating',
  );

  // silent corruption of the replica's base image (the latest point reads it)
  const corruptAt = 5 * MiB + 12_345;
  const base = await open(join(lab.host('host-b').stateDir, 'replicas', 'v', 'disks', 'v-d0.base'), 'r+');
  await base.write(Buffer.from('bit rot'), 0, 7, corruptAt);
  await base.sync();
  await base.close();

  const sentBefore = (await a.client.get<RelationshipView>('/v1/relationships/v')).report.bytes.logicalSent;
  await a.client.post('/v1/relationships/v/resync');
  // a 30 s copy interval: pausing and resuming starts the next cycle now
  await a.client.post('/v1/relationships/v/pause');
  await a.client.post('/v1/relationships/v/resume');
  const repaired = await waitFor(
    'a point after the resync',
    async () => {
      const latest = (await replicaView(lab, 'v')).latestPoint;
      return latest && latest.sequence > first.sequence ? latest : null;
    },
    60_000,
  );
  const sent =
    (await a.client.get<RelationshipView>('/v1/relationships/v')).report.bytes.logicalSent - sentBefore;
  assert.ok(
    sent > 0 && sent <= CHUNK_BYTES,
    `the resync sent ${sent} bytes: only the corrupted chunk (seed ${seed})`,
  );
  const opened = await openLatestPoint(lab, 'v', ['v-d0'], (p) => p.sequence >= repaired.sequence);
  try {
    const got = await opened.clients[0]!.read(0, DISK_BYTES);
    assert.ok(got.equals(content), `the repaired point equals the primary (seed ${seed})`);
  } finally {
    await opened.close();
  }
});

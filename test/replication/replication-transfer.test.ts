/**
 * End-to-end shipping over real mutual-TLS sockets on loopback: initial (sparse-aware) and incremental
 * cycles across two disks, zero chunks as ZERO frames, compression on/off, resync sending only
 * differing chunks, idempotent re-send of a committed cycle, and the bandwidth limit.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Rng } from '../../src/domain/random.js';
import { buildReport } from '../../src/domain/replication/replication-report.js';
import { MemoryCycleSnapshot } from './memory-cycle-snapshot.js';
import { SEED, createPki, makeSender, mixedDisk, startReceiver } from './replication-fixture.js';
import type { Pki, TestReceiver } from './replication-fixture.js';

const MiB = 1024 * 1024;
let pki: Pki;
let rx: TestReceiver;

before(async () => {
  pki = await createPki();
  rx = await startReceiver(pki);
});

after(async () => {
  await rx.stop();
  await pki.cleanup();
});

test('initial and incremental cycles over two disks reproduce the disks exactly', async () => {
  const rng = new Rng(SEED);
  const d0 = mixedDisk(4 * MiB, rng);
  const d1 = Buffer.alloc(2 * MiB); // mostly a hole
  rng.fill(d1.subarray(MiB, MiB + 8192));
  const sender = makeSender(pki.hostA, rx.port, {
    relationshipId: 'vm-e2e',
    policy: { chunkBytes: 256 * 1024 },
  });
  const s0 = new MemoryCycleSnapshot('disk0', d0);
  const s1 = new MemoryCycleSnapshot('disk1', d1);
  const r1 = await sender.shipCycle({
    cycleId: 'c1',
    cutWallMs: 1000,
    consistency: 'crash-consistent',
    snapshots: [s0, s1],
  });
  const store = rx.stores.get('vm-e2e');
  assert.ok(store);
  assert.equal(store.points().length, 1, `seed ${SEED}`);
  assert.ok(store.latestImage('disk0').equals(d0), `disk0 differs after initial copy, seed ${SEED}`);
  assert.ok(store.latestImage('disk1').equals(d1), `disk1 differs after initial copy, seed ${SEED}`);
  assert.equal(s0.completed + s1.completed, 2);
  // sparse aware: the 2 MiB hole disk sent only its 8 KiB of data (one 256 KiB chunk) as data
  assert.ok(r1.logicalBytesSent <= 4 * MiB + 256 * 1024, `logical ${r1.logicalBytesSent}`);

  // incremental: change two ranges on disk0, one on disk1
  const d0b = Buffer.from(d0);
  rng.fill(d0b.subarray(100_000, 300_000));
  d0b.fill(7, 3 * MiB, 3 * MiB + 4096);
  const d1b = Buffer.from(d1);
  rng.fill(d1b.subarray(0, 4096));
  const changed0 = [
    { offsetBytes: 98_304, lengthBytes: 204_800 },
    { offsetBytes: 3 * MiB, lengthBytes: 4096 },
  ];
  const r2 = await sender.shipCycle({
    cycleId: 'c2',
    cutWallMs: 2000,
    consistency: 'app-consistent',
    snapshots: [
      new MemoryCycleSnapshot('disk0', d0b, { changed: changed0 }),
      new MemoryCycleSnapshot('disk1', d1b, { changed: [{ offsetBytes: 0, lengthBytes: 4096 }] }),
    ],
  });
  assert.equal(store.points().length, 2);
  assert.equal(store.points()[1]?.consistency, 'app-consistent');
  assert.ok(store.latestImage('disk0').equals(d0b), `disk0 differs after incremental, seed ${SEED}`);
  assert.ok(store.latestImage('disk1').equals(d1b), `disk1 differs after incremental, seed ${SEED}`);
  assert.equal(r2.logicalBytesSent, 204_800 + 4096 + 4096);
  const report = buildReport(sender.stats, 2500);
  assert.equal(report.lastPoint?.pointId, r2.point.pointId);
  assert.equal(report.lagMs, 500);
  assert.equal(report.health.level, 'Normal');
  sender.disconnect();
});

test('zero runs inside a 1 MiB chunk travel as ZERO frames too (64 KiB granules)', async () => {
  const disk = Buffer.alloc(2 * MiB);
  new Rng(7).fill(disk.subarray(0, 256 * 1024)); // data | 768 KiB zeros | data | zeros
  new Rng(8).fill(disk.subarray(MiB, MiB + 128 * 1024));
  const sender = makeSender(pki.hostA, rx.port, {
    relationshipId: 'vm-zero-runs',
    policy: { chunkBytes: MiB },
  });
  await sender.shipCycle({
    cycleId: 'zr0',
    cutWallMs: 1,
    consistency: 'crash-consistent',
    snapshots: [new MemoryCycleSnapshot('d', Buffer.alloc(2 * MiB))],
  });
  const r = await sender.shipCycle({
    cycleId: 'zr1',
    cutWallMs: 2,
    consistency: 'crash-consistent',
    snapshots: [new MemoryCycleSnapshot('d', disk, { changed: [{ offsetBytes: 0, lengthBytes: 2 * MiB }] })],
  });
  assert.equal(r.logicalBytesSent, 384 * 1024, 'only the granules with data are sent as data');
  assert.equal(r.zeroBytes, 2 * MiB - 384 * 1024);
  const store = rx.stores.get('vm-zero-runs');
  assert.ok(store?.latestImage('d').equals(disk));
  sender.disconnect();
});

test('all-zero chunks travel as ZERO frames, never as data', async () => {
  const disk = Buffer.alloc(2 * MiB);
  disk.fill(1, 0, 4096); // one data block; the rest of the changed range is zeros but "allocated"
  const sender = makeSender(pki.hostA, rx.port, {
    relationshipId: 'vm-zero',
    policy: { chunkBytes: 64 * 1024 },
  });
  await sender.shipCycle({
    cycleId: 'z0',
    cutWallMs: 1,
    consistency: 'crash-consistent',
    snapshots: [new MemoryCycleSnapshot('d', Buffer.alloc(2 * MiB))],
  });
  const store = rx.stores.get('vm-zero');
  assert.ok(store);
  const before = store.bytesWritten;
  const r = await sender.shipCycle({
    cycleId: 'z1',
    cutWallMs: 2,
    consistency: 'crash-consistent',
    snapshots: [new MemoryCycleSnapshot('d', disk, { changed: [{ offsetBytes: 0, lengthBytes: 2 * MiB }] })],
  });
  assert.equal(r.logicalBytesSent, 64 * 1024, 'only the chunk with data is sent as data');
  assert.equal(r.zeroBytes, 2 * MiB - 64 * 1024);
  assert.equal(store.bytesWritten - before, 64 * 1024);
  assert.ok(r.wireBytesSent < 64 * 1024 + 16 * 1024, `wire ${r.wireBytesSent}`);
  assert.ok(store.latestImage('d').equals(disk));
  sender.disconnect();
});

test('compression on and off both roundtrip; on sends fewer wire bytes for compressible data', async () => {
  const rng = new Rng(SEED + 1);
  const disk = mixedDisk(4 * MiB, rng);
  const results: number[] = [];
  for (const compression of [false, true]) {
    const rel = `vm-comp-${compression}`;
    const sender = makeSender(pki.hostA, rx.port, {
      relationshipId: rel,
      policy: { compression, chunkBytes: 64 * 1024 },
    });
    const r = await sender.shipCycle({
      cycleId: 'c',
      cutWallMs: 1,
      consistency: 'crash-consistent',
      snapshots: [new MemoryCycleSnapshot('d', disk)],
    });
    assert.ok(
      rx.stores.get(rel)?.latestImage('d').equals(disk),
      `roundtrip with compression=${compression}, seed ${SEED}`,
    );
    results.push(r.wireBytesSent);
    sender.disconnect();
  }
  const [off, on] = results as [number, number];
  assert.ok(on < off * 0.9, `compressed wire ${on} vs raw ${off}`);
});

test('resync compares digests and sends only the differing chunks', async () => {
  const disk = new Rng(SEED + 2).fill(Buffer.alloc(4 * MiB)) as Buffer;
  const sender = makeSender(pki.hostA, rx.port, {
    relationshipId: 'vm-resync',
    policy: { chunkBytes: 128 * 1024 },
  });
  await sender.shipCycle({
    cycleId: 'r0',
    cutWallMs: 1,
    consistency: 'crash-consistent',
    snapshots: [new MemoryCycleSnapshot('d', disk)],
  });
  // the primary diverged silently in three chunks (tracking lost them): resync must find exactly those
  const diverged = Buffer.from(disk);
  for (const off of [0, 1 * MiB + 5, 3 * MiB + 200_000]) diverged[off] = (diverged[off] ?? 0) ^ 0xff;
  const r = await sender.shipCycle({
    cycleId: 'r1',
    cutWallMs: 2,
    consistency: 'crash-consistent',
    snapshots: [new MemoryCycleSnapshot('d', diverged, { resyncRequired: true })],
  });
  assert.equal(r.logicalBytesSent, 3 * 128 * 1024, `sent ${r.logicalBytesSent}`);
  assert.ok(r.chunksSkippedByDigest > 0);
  assert.ok(rx.stores.get('vm-resync')?.latestImage('d').equals(diverged), `seed ${SEED}`);
  sender.disconnect();
});

test('a committed cycle sent again is acknowledged, not applied twice', async () => {
  const disk = mixedDisk(MiB, new Rng(SEED + 3));
  const sender = makeSender(pki.hostA, rx.port, { relationshipId: 'vm-idem' });
  const cycle = { cycleId: 'same', cutWallMs: 5, consistency: 'crash-consistent' as const };
  const r1 = await sender.shipCycle({ ...cycle, snapshots: [new MemoryCycleSnapshot('d', disk)] });
  const store = rx.stores.get('vm-idem');
  const written = store?.bytesWritten;
  const r2 = await sender.shipCycle({ ...cycle, snapshots: [new MemoryCycleSnapshot('d', disk)] });
  assert.equal(r2.point.pointId, r1.point.pointId);
  assert.equal(store?.points().length, 1);
  assert.equal(store?.bytesWritten, written);
  sender.disconnect();
});

test('the bandwidth limit is honoured within tolerance', async () => {
  const rng = new Rng(SEED + 4);
  const disk = Buffer.alloc(3 * MiB);
  rng.fill(disk);
  const limit = 4 * MiB; // bytes per second
  const sender = makeSender(pki.hostA, rx.port, {
    relationshipId: 'vm-rate',
    policy: { bandwidthBytesPerSec: limit, chunkBytes: 64 * 1024, compression: false },
  });
  const t0 = performance.now();
  const r = await sender.shipCycle({
    cycleId: 'c',
    cutWallMs: 1,
    consistency: 'crash-consistent',
    snapshots: [new MemoryCycleSnapshot('d', disk)],
  });
  const seconds = (performance.now() - t0) / 1000;
  const rate = r.wireBytesSent / seconds;
  // burst is max(chunk, limit/20): expected ~(3 MiB - burst) / 4 MiB/s = ~0.7 s
  assert.ok(rate <= limit * 1.15, `rate ${Math.round(rate)} B/s over the limit ${limit}`);
  assert.ok(rate >= limit * 0.5, `rate ${Math.round(rate)} B/s far below the limit ${limit}`);
  sender.disconnect();
});

test('idle connections: the receiver closes them quietly, the sender reconnects for the next cycle', async () => {
  const quiet = await startReceiver(pki, { idleTimeoutMs: 1500 });
  try {
    const disk = Buffer.alloc(65536, 3);
    const sender = makeSender(pki.hostA, quiet.port, { relationshipId: 'vm-idle' });
    const snap = (id: string) => ({
      cycleId: id,
      cutWallMs: 1,
      consistency: 'crash-consistent' as const,
      snapshots: [new MemoryCycleSnapshot('d', disk)],
    });
    await sender.shipCycle(snap('a'));
    await sender.shipCycle(snap('b')); // reuses the connection
    assert.equal(quiet.receiver.counters.sessionsAccepted, 1);
    await new Promise((r) => setTimeout(r, 2500)); // receiver idle timeout passes
    const r = await sender.shipCycle(snap('c'));
    assert.equal(r.attempts, 1, 'the closed connection was noticed before the cycle, not retried');
    assert.equal(quiet.receiver.counters.sessionsAccepted, 2);
    assert.deepEqual(
      quiet.events.filter((e) => e.event === 'replication:receiver:session-failed'),
      [],
      'an idle close is not a failure',
    );
    sender.disconnect();
  } finally {
    await quiet.stop();
  }
});

test('a cycle with no changes still commits a point (the cut time moves on)', async () => {
  const sender = makeSender(pki.hostA, rx.port, { relationshipId: 'vm-empty' });
  const disk = Buffer.alloc(65536, 9);
  await sender.shipCycle({
    cycleId: 'e0',
    cutWallMs: 1,
    consistency: 'crash-consistent',
    snapshots: [new MemoryCycleSnapshot('d', disk)],
  });
  const r = await sender.shipCycle({
    cycleId: 'e1',
    cutWallMs: 2,
    consistency: 'crash-consistent',
    snapshots: [new MemoryCycleSnapshot('d', disk, { changed: [] })],
  });
  assert.equal(r.logicalBytesSent, 0);
  assert.equal(rx.stores.get('vm-empty')?.points().at(-1)?.cutWallMs, 2);
  sender.disconnect();
});

test('stop() during a backoff ends the cycle at once and keeps its changes', async () => {
  const sender = makeSender(pki.hostA, 1, {
    relationshipId: 'vm-stop',
    policy: { backoff: { initialMs: 60_000, maxMs: 60_000 }, maxAttempts: 5 },
  });
  const snap = new MemoryCycleSnapshot('d', Buffer.alloc(65536, 1));
  const t0 = performance.now();
  const shipping = sender.shipCycle({
    cycleId: 's',
    cutWallMs: 1,
    consistency: 'crash-consistent',
    snapshots: [snap],
  });
  for (let i = 0; i < 100 && sender.stats.state !== 'backoff'; i++)
    await new Promise((r) => setTimeout(r, 50));
  assert.equal(sender.stats.state, 'backoff');
  sender.stop();
  await assert.rejects(shipping);
  assert.ok(performance.now() - t0 < 5000, 'did not wait out the 60 s backoff');
  assert.equal(snap.abandoned, 1);
  assert.equal(sender.stats.state, 'stopped');
});

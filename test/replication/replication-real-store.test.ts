/**
 * The receiver against the real recovery-point store (PointStore on NodeStorage in a temp dir): initial
 * sparse copy, incremental cycle, resync by digests against the latest point, and a cycle cut mid-way
 * whose receiver is then restarted (store closed and reopened from disk): the sender resumes from the
 * durably staged progress, re-sending at most one chunk plus the window. A new store starts at epoch 0.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Rng } from '../../src/domain/random.js';
import { PointStore } from '../../src/host/recovery-points/point-store.js';
import type { ReplicaStore } from '../../src/host/recovery-points/replica-store.js';
import type { ReplicaStoreOpener } from '../../src/host/replication/replication-receiver.js';
import { NodeStorage } from '../../src/host/storage/node-storage.js';
import { CutProxy } from './cut-proxy.js';
import { MemoryCycleSnapshot } from './memory-cycle-snapshot.js';
import { SEED, createPki, makeSender, mixedDisk, realClock, startReceiver } from './replication-fixture.js';
import type { Pki, TestReceiver } from './replication-fixture.js';

const MiB = 1024 * 1024;
let pki: Pki;
let dir: string;
let rx: TestReceiver;
const opened = new Map<string, ReplicaStore>();

const openReal: ReplicaStoreOpener = async (req) => {
  const store = await PointStore.open({
    storage: new NodeStorage(),
    storageDir: join(dir, req.storageLocation),
    relationshipId: req.relationshipId,
    clock: realClock,
  });
  opened.set(req.relationshipId, store);
  return store;
};

before(async () => {
  pki = await createPki();
  dir = await mkdtemp(join(tmpdir(), 'secondsite-repl-real-'));
  rx = await startReceiver(pki, { openStore: openReal });
});

after(async () => {
  await rx.stop();
  await pki.cleanup();
  await rm(dir, { recursive: true, force: true });
});

async function latestImage(rel: string, diskId: string): Promise<Buffer> {
  const store = opened.get(rel);
  assert.ok(store);
  const last = store.points().at(-1);
  assert.ok(last, 'a point exists');
  const reader = await store.openPointDisk(last.pointId, diskId);
  try {
    return await reader.read(0, reader.sizeBytes);
  } finally {
    await reader.close();
  }
}

test('initial, incremental and resync cycles into the real point store', async () => {
  const rng = new Rng(SEED + 20);
  const disk = mixedDisk(4 * MiB, rng);
  const sender = makeSender(pki.hostA, rx.port, {
    relationshipId: 'vm-real',
    epoch: 0,
    policy: { chunkBytes: 128 * 1024 },
  });
  await sender.shipCycle({
    cycleId: 'i0',
    cutWallMs: 1,
    consistency: 'crash-consistent',
    snapshots: [new MemoryCycleSnapshot('d', disk)],
  });
  assert.ok((await latestImage('vm-real', 'd')).equals(disk), `initial, seed ${SEED}`);

  const next = Buffer.from(disk);
  rng.fill(next.subarray(MiB, MiB + 200_000));
  const r2 = await sender.shipCycle({
    cycleId: 'i1',
    cutWallMs: 2,
    consistency: 'crash-consistent',
    snapshots: [
      new MemoryCycleSnapshot('d', next, { changed: [{ offsetBytes: MiB, lengthBytes: 262_144 }] }),
    ],
  });
  assert.equal(r2.logicalBytesSent, 262_144);
  assert.ok((await latestImage('vm-real', 'd')).equals(next), `incremental, seed ${SEED}`);

  const diverged = Buffer.from(next);
  diverged[0] = (diverged[0] ?? 0) ^ 0x55;
  diverged[3 * MiB + 10] = (diverged[3 * MiB + 10] ?? 0) ^ 0x55;
  const r3 = await sender.shipCycle({
    cycleId: 'i2',
    cutWallMs: 3,
    consistency: 'crash-consistent',
    snapshots: [new MemoryCycleSnapshot('d', diverged, { resyncRequired: true })],
  });
  assert.ok(r3.logicalBytesSent <= 2 * 128 * 1024, `resync sent ${r3.logicalBytesSent}`);
  assert.ok(r3.chunksSkippedByDigest > 0);
  assert.ok((await latestImage('vm-real', 'd')).equals(diverged), `resync, seed ${SEED}`);
  assert.equal(opened.get('vm-real')?.points().length, 3);
  sender.disconnect();
});

test('a cycle cut mid-way, then the receiver restarted: resume from the durably staged chunks', async () => {
  const disk = new Rng(SEED + 21).fill(Buffer.alloc(6 * MiB)) as Buffer;
  const proxy = new CutProxy(rx.port);
  const proxyPort = await proxy.start();
  try {
    proxy.cutSchedule.push(3 * MiB);
    const chunkBytes = 256 * 1024;
    const windowChunks = 4;
    let restarted = false;
    const sender = makeSender(pki.hostA, proxyPort, {
      relationshipId: 'vm-real-restart',
      epoch: 0,
      policy: { chunkBytes, windowChunks, compression: false },
      sleep: async (ms) => {
        if (!restarted) {
          restarted = true;
          assert.equal(opened.get('vm-real-restart')?.points().length, 0, 'no point while the cycle is cut');
          await rx.stop(); // closes the store: only what was synced survives
          rx = await startReceiver(pki, { openStore: openReal });
          proxy.targetPort = rx.port;
        }
        await new Promise((r) => setTimeout(r, ms));
      },
    });
    const r = await sender.shipCycle({
      cycleId: 'big',
      cutWallMs: 5,
      consistency: 'crash-consistent',
      snapshots: [new MemoryCycleSnapshot('d', disk)],
    });
    sender.disconnect();
    assert.ok(restarted);
    assert.equal(r.attempts, 2);
    assert.ok(r.resentBytes <= (windowChunks + 1) * chunkBytes, `re-sent ${r.resentBytes}`);
    assert.ok(r.logicalBytesSent < disk.length + (windowChunks + 1) * chunkBytes);
    assert.ok((await latestImage('vm-real-restart', 'd')).equals(disk), `seed ${SEED}`);
  } finally {
    await proxy.stop();
  }
});

test('a sender restarted mid-way (new cycle id): the replica adopts the staged part, only missing and changed chunks are sent', async () => {
  const rng = new Rng(SEED + 22);
  const disk = rng.fill(Buffer.alloc(6 * MiB)) as Buffer;
  const chunkBytes = 256 * 1024;
  const proxy = new CutProxy(rx.port);
  const proxyPort = await proxy.start();
  try {
    // the first sender dies (gives up at once) after about half the disk went through
    proxy.cutSchedule.push(3 * MiB);
    const first = makeSender(pki.hostA, proxyPort, {
      relationshipId: 'vm-adopt',
      epoch: 0,
      policy: { chunkBytes, windowChunks: 4, compression: false, maxAttempts: 1 },
    });
    await assert.rejects(
      first.shipCycle({
        cycleId: 'before-restart',
        cutWallMs: 1,
        consistency: 'crash-consistent',
        snapshots: [new MemoryCycleSnapshot('d', disk)],
      }),
    );
    first.stop();
    // meanwhile the VM wrote into the part that was already staged and into the rest
    const next = Buffer.from(disk);
    const changedStaged = chunkBytes + 1000;
    next[changedStaged] = (next[changedStaged] ?? 0) ^ 0xff;
    rng.fill(next.subarray(5 * MiB, 5 * MiB + 10));
    const second = makeSender(pki.hostA, proxyPort, {
      relationshipId: 'vm-adopt',
      epoch: 0,
      policy: { chunkBytes, windowChunks: 4, compression: false },
    });
    const r = await second.shipCycle({
      cycleId: 'after-restart',
      cutWallMs: 2,
      consistency: 'crash-consistent',
      snapshots: [new MemoryCycleSnapshot('d', next)],
    });
    second.disconnect();
    const skippedBytes = r.chunksSkippedByDigest * chunkBytes;
    assert.ok(skippedBytes >= MiB, `only ${skippedBytes} bytes verified by digest (seed ${SEED})`);
    assert.equal(r.logicalBytesSent + skippedBytes, next.length, 'every chunk either sent or verified');
    assert.ok(
      r.logicalBytesSent <= next.length - MiB,
      `sent ${r.logicalBytesSent} of ${next.length} after the restart (seed ${SEED})`,
    );
    assert.ok((await latestImage('vm-adopt', 'd')).equals(next), `replica differs (seed ${SEED})`);
    assert.equal(opened.get('vm-adopt')?.points().at(-1)?.cycleId, 'after-restart');
  } finally {
    await proxy.stop();
  }
});

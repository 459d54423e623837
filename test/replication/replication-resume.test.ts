/**
 * Cut connections through a TCP proxy mid-cycle: no point is visible while the cycle is incomplete,
 * the sender reconnects with backoff and resumes from the replica's durable progress, the bytes sent
 * again after each cut stay within one chunk plus the in-flight window, and the final point equals
 * the source.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SecondsiteError } from '../../src/domain/errors.js';
import { Rng } from '../../src/domain/random.js';
import { FaultProxy } from '../../src/testing/faults/fault-proxy.js';
import { MemoryCycleSnapshot } from './memory-cycle-snapshot.js';
import { MemoryReplicaStore } from './memory-replica-store.js';
import { SEED, createPki, makeSender, startReceiver } from './replication-fixture.js';
import type { Pki, TestReceiver } from './replication-fixture.js';

const MiB = 1024 * 1024;
let pki: Pki;
let rx: TestReceiver;
let proxy: FaultProxy;

before(async () => {
  pki = await createPki();
  rx = await startReceiver(pki);
  proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: rx.port }, seed: SEED });
});

after(async () => {
  await proxy.close();
  await rx.stop();
  await pki.cleanup();
});

for (const compression of [false, true]) {
  test(`cut twice mid-cycle (compression ${compression ? 'on' : 'off'}): resume re-sends at most one chunk + the window per cut`, async () => {
    const rng = new Rng(SEED + (compression ? 11 : 10));
    const disk = rng.fill(Buffer.alloc(8 * MiB)) as Buffer;
    const chunkBytes = 256 * 1024;
    const windowChunks = 4;
    const rel = `vm-cut-${compression}`;
    // first connection cut after 3 MiB upstream, the second after 2 MiB, then the link is clean
    const budgets = [2 * MiB, null];
    proxy.set('upstream', { cutAfterBytes: 3 * MiB });
    const pointsDuringBackoff: number[] = [];
    const sender = makeSender(pki.hostA, proxy.port, {
      relationshipId: rel,
      policy: { chunkBytes, windowChunks, compression },
      sleep: async (ms) => {
        pointsDuringBackoff.push(rx.stores.get(rel)?.points().length ?? 0);
        proxy.set('upstream', { cutAfterBytes: budgets.shift() ?? null });
        await new Promise((r) => setTimeout(r, ms));
      },
    });
    const snap = new MemoryCycleSnapshot('d', disk);
    const r = await sender.shipCycle({
      cycleId: 'big',
      cutWallMs: 1,
      consistency: 'crash-consistent',
      snapshots: [snap],
    });
    sender.disconnect();
    assert.equal(r.attempts, 3);
    assert.deepEqual(pointsDuringBackoff, [0, 0], 'no point is visible while the cycle is incomplete');
    const bound = 2 * (windowChunks + 1) * chunkBytes;
    assert.ok(r.resentBytes <= bound, `re-sent ${r.resentBytes} bytes > bound ${bound} (seed ${SEED})`);
    assert.ok(r.logicalBytesSent <= disk.length + bound);
    assert.equal(snap.completed, 1);
    const store = rx.stores.get(rel);
    assert.equal(store?.points().length, 1);
    assert.ok(store?.latestImage('d').equals(disk), `replica differs after resume (seed ${SEED})`);
    assert.equal(sender.stats.resentBytes, r.resentBytes);
  });
}

test('a sender that cannot reach the replica gives up after maxAttempts with a transient error and keeps the changes', async () => {
  const sender = makeSender(pki.hostA, 1, { relationshipId: 'vm-unreachable', policy: { maxAttempts: 3 } });
  const snap = new MemoryCycleSnapshot('d', Buffer.alloc(65536, 1));
  await assert.rejects(
    sender.shipCycle({ cycleId: 'c', cutWallMs: 1, consistency: 'crash-consistent', snapshots: [snap] }),
    (e: unknown) => (e as { retry?: string }).retry === 'transient',
  );
  assert.equal(snap.abandoned, 1);
  assert.equal(snap.completed, 0);
  assert.equal(sender.stats.lastError?.code, 'SECONDSITE_ERR_CONNECTION_LOST');
});

test('a full replica (NO_SPACE) is transient: the sender backs off and resumes once space is back', async () => {
  const store = new MemoryReplicaStore('vm-nospace', 1);
  let failuresLeft = 2;
  const begin = store.beginCycle.bind(store);
  store.beginCycle = async (cycleId, epoch) => {
    const writer = await begin(cycleId, epoch);
    const write = writer.writeChunk.bind(writer);
    return Object.assign(Object.create(writer) as typeof writer, {
      writeChunk: async (diskId: string, offsetBytes: number, data: Buffer) => {
        if (store.chunksWritten >= 3 && failuresLeft > 0) {
          failuresLeft--;
          throw new SecondsiteError('SECONDSITE_ERR_NO_SPACE', 'replica storage is full');
        }
        await write(diskId, offsetBytes, data);
      },
    });
  };
  const full = await startReceiver(pki, { openStore: () => Promise.resolve(store) });
  try {
    const disk = new Rng(SEED + 12).fill(Buffer.alloc(2 * MiB)) as Buffer;
    const sender = makeSender(pki.hostA, full.port, {
      relationshipId: 'vm-nospace',
      policy: { chunkBytes: 256 * 1024, windowChunks: 2, compression: false },
    });
    const r = await sender.shipCycle({
      cycleId: 'n',
      cutWallMs: 1,
      consistency: 'crash-consistent',
      snapshots: [new MemoryCycleSnapshot('d', disk)],
    });
    sender.disconnect();
    assert.equal(r.attempts, 3, 'two NO_SPACE refusals, then success');
    assert.equal(sender.stats.lastError?.code, 'SECONDSITE_ERR_NO_SPACE');
    assert.ok(r.resentBytes <= 2 * (2 + 1) * 256 * 1024, `re-sent ${r.resentBytes}`);
    assert.ok(store.latestImage('d').equals(disk), `seed ${SEED}`);
  } finally {
    await full.stop();
  }
});

test('a byte corrupted in transit fails its TLS record: transient, the sender resumes, nothing corrupt is staged', async () => {
  const flip = await FaultProxy.start({ target: { host: '127.0.0.1', port: rx.port }, seed: SEED });
  try {
    flip.set('upstream', { flipByteAtOffset: MiB + 12_345 });
    const disk = new Rng(SEED + 13).fill(Buffer.alloc(4 * MiB)) as Buffer;
    const chunkBytes = 256 * 1024;
    const windowChunks = 4;
    const sender = makeSender(pki.hostA, flip.port, {
      relationshipId: 'vm-flip',
      policy: { chunkBytes, windowChunks, compression: false },
      sleep: async (ms) => {
        flip.set('upstream', { flipByteAtOffset: null });
        await new Promise((r) => setTimeout(r, ms));
      },
    });
    const r = await sender.shipCycle({
      cycleId: 'f',
      cutWallMs: 1,
      consistency: 'crash-consistent',
      snapshots: [new MemoryCycleSnapshot('d', disk)],
    });
    sender.disconnect();
    assert.equal(r.attempts, 2, 'one corrupted connection, then success');
    assert.equal(sender.stats.lastError?.retry, 'transient', JSON.stringify(sender.stats.lastError));
    assert.ok(r.resentBytes <= (windowChunks + 1) * chunkBytes, `re-sent ${r.resentBytes}`);
    assert.ok(rx.stores.get('vm-flip')?.latestImage('d').equals(disk), `seed ${SEED}`);
  } finally {
    await flip.close();
  }
});

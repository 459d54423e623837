/**
 * Malformed, forged, replayed and stale frames against a real receiver (security tests S11-S16): each
 * is refused with an ERROR frame and the connection closes; nothing from the bad frame is staged and
 * no point is committed. Truncation, EOF mid-payload and a reset mid-cycle leave no point, and a real
 * sender then resumes the same cycle from the replica's durable progress.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Rng } from '../../src/domain/random.js';
import { FLAG_SYNC, HEADER_BYTES, encodeFrame } from '../../src/protocol/replication/frame-codec.js';
import { cycleDigestOf, planDigestOf } from '../../src/protocol/replication/cycle-digest.js';
import { DATA_FIELDS_BYTES, FRAME_TYPES } from '../../src/protocol/replication/messages.js';
import { compressChunk } from '../../src/host/replication/chunk-compression.js';
import type { DiskExtent, Message } from '../../src/protocol/replication/messages.js';
import { MemoryCycleSnapshot } from './memory-cycle-snapshot.js';
import { buildFrame, RawPeer } from './raw-peer.js';
import { SEED, createPki, makeSender, startReceiver } from './replication-fixture.js';
import type { Pki, TestReceiver } from './replication-fixture.js';

const DISK_BYTES = 1024 * 1024;
const CHUNK = 65536;
let pki: Pki;
let rx: TestReceiver;
let relCounter = 0;

before(async () => {
  pki = await createPki();
  rx = await startReceiver(pki);
});

after(async () => {
  await rx.stop();
  await pki.cleanup();
});

const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

/** A peer that said HELLO and began cycle `cycleId` over the whole disk; returns it ready for chunks. */
async function openCycle(cycleId = 'c1'): Promise<{ peer: RawPeer; rel: string; plan: DiskExtent[] }> {
  const rel = `vm-frames-${++relCounter}`;
  const peer = await RawPeer.connect(rx.port, pki.hostA, rel);
  const welcome = await peer.hello([{ diskId: 'd', sizeBytes: DISK_BYTES }], rel);
  assert.equal(welcome?.message.kind, 'welcome');
  const plan = [{ diskIndex: 0, offsetBytes: 0, lengthBytes: DISK_BYTES }];
  peer.send({
    kind: 'cycle-begin',
    cycleId,
    cutWallMs: 10,
    consistency: 'crash-consistent',
    mode: 'incremental',
    planExtentCount: 1,
    planDigest: planDigestOf(plan),
  });
  peer.send({ kind: 'plan', extents: plan });
  const ready = await peer.next();
  assert.equal(ready?.message.kind, 'cycle-ready');
  return { peer, rel, plan };
}

function dataMessage(offsetBytes: number, data: Buffer): Message {
  return {
    kind: 'data',
    diskIndex: 0,
    offsetBytes,
    lengthBytes: data.length,
    compression: 'none',
    dataChecksum: sha(data),
    body: data,
  };
}

function cycleEnd(cycleId = 'c1', plan: DiskExtent[]): Message {
  return {
    kind: 'cycle-end',
    cycleId,
    cutWallMs: 10,
    consistency: 'crash-consistent',
    cycleDigest: cycleDigestOf({
      cycleId,
      cutWallMs: 10,
      consistency: 'crash-consistent',
      planDigest: planDigestOf(plan),
    }),
  };
}

async function expectRefused(peer: RawPeer, code: string, rel: string): Promise<void> {
  const err = await peer.nextError();
  assert.equal(err?.code, code, `expected ${code}, got ${JSON.stringify(err)}`);
  await peer.closedPromise;
  assert.equal(rx.stores.get(rel)?.points().length ?? 0, 0, 'no point may be committed');
}

test('a good raw cycle commits (control for the refusals below)', async () => {
  const { peer, rel, plan } = await openCycle();
  const data = new Rng(SEED).fill(Buffer.alloc(DISK_BYTES)) as Buffer;
  for (let o = 0; o < DISK_BYTES; o += CHUNK) peer.send(dataMessage(o, data.subarray(o, o + CHUNK)));
  peer.send(cycleEnd('c1', plan));
  let f = await peer.next();
  while (f && f.message.kind === 'ack') f = await peer.next();
  assert.equal(f?.message.kind, 'point-committed');
  assert.ok(rx.stores.get(rel)?.latestImage('d').equals(data));
  peer.end();
});

test('stale epoch: frames of an older epoch are refused and the connection closed', async () => {
  const { peer, rel } = await openCycle();
  const store = rx.stores.get(rel);
  assert.ok(store);
  await store.setEpoch(2); // a failover fenced this primary
  const written = store.chunksWritten;
  peer.send(dataMessage(0, Buffer.alloc(CHUNK, 9)));
  await expectRefused(peer, 'SECONDSITE_ERR_STALE_EPOCH', rel);
  assert.equal(store.chunksWritten, written);
  // and a new session at the old epoch is refused at HELLO
  const again = await RawPeer.connect(rx.port, pki.hostA, rel);
  again.send({
    kind: 'hello',
    retentionHours: 24,
    vmConfig: '',
    primaryHostId: 'host-a',
    relationshipId: rel,
    storageLocation: 'gold',
    disks: [{ diskId: 'd', sizeBytes: DISK_BYTES }],
  });
  await expectRefused(again, 'SECONDSITE_ERR_STALE_EPOCH', rel);
  // the real sender treats it as permanent and keeps the changes for the next cut
  const sender = makeSender(pki.hostA, rx.port, { relationshipId: rel, epoch: 1 });
  const snap = new MemoryCycleSnapshot('d', Buffer.alloc(DISK_BYTES));
  await assert.rejects(
    sender.shipCycle({ cycleId: 'x', cutWallMs: 1, consistency: 'crash-consistent', snapshots: [snap] }),
    (e: unknown) => (e as { code?: string }).code === 'SECONDSITE_ERR_STALE_EPOCH',
  );
  assert.equal(snap.abandoned, 1);
});

test('replayed seq (same seq twice) is refused; nothing from it is staged', async () => {
  const { peer, rel } = await openCycle();
  const store = rx.stores.get(rel);
  peer.send(dataMessage(0, Buffer.alloc(CHUNK, 1)), { flags: FLAG_SYNC });
  const ack = await peer.next();
  assert.equal(ack?.message.kind, 'ack');
  const written = store?.chunksWritten;
  peer.send(dataMessage(CHUNK, Buffer.alloc(CHUNK, 2)), { seq: peer.seq }); // replay of the last seq
  await expectRefused(peer, 'SECONDSITE_ERR_BAD_FRAME', rel);
  assert.equal(store?.chunksWritten, written);
});

test('a forged chunk (data checksum wrong) is refused: nothing applied, no point', async () => {
  const { peer, rel, plan } = await openCycle();
  const store = rx.stores.get(rel);
  const data = Buffer.alloc(CHUNK, 3);
  const forged = {
    ...(dataMessage(0, data) as Extract<Message, { kind: 'data' }>),
    dataChecksum: sha(Buffer.alloc(CHUNK, 4)),
  };
  peer.send(forged);
  peer.send(cycleEnd('c1', plan));
  await expectRefused(peer, 'SECONDSITE_ERR_BAD_FRAME', rel);
  assert.equal(store?.chunksWritten, 0);
});

test('a DATA frame altered in transit is refused (fields: payload checksum; raw or LZ4 body: chunk checksum): nothing applied, no point', async () => {
  const rng = new Rng(SEED);
  const text = Buffer.from('secondsite replicates blocks; '.repeat(Math.ceil(CHUNK / 30))).subarray(0, CHUNK);
  const packed = compressChunk(text);
  assert.equal(packed.compression, 'lz4', 'the text chunk must compress for this case');
  const cases: Array<{ name: string; message: Message; flipAt: (frameBytes: number) => number }> = [
    {
      name: 'raw body, last byte',
      message: dataMessage(0, Buffer.alloc(CHUNK, 5)),
      flipAt: (n) => n - 1,
    },
    {
      name: 'lz4 body, a byte after the size prefix',
      message: { ...(dataMessage(0, text) as Extract<Message, { kind: 'data' }>), ...packed },
      flipAt: (n) => HEADER_BYTES + DATA_FIELDS_BYTES + 4 + rng.int(n - HEADER_BYTES - DATA_FIELDS_BYTES - 4),
    },
    {
      name: 'offset field',
      message: dataMessage(0, Buffer.alloc(CHUNK, 6)),
      flipAt: () => HEADER_BYTES + 2 + 7,
    },
  ];
  for (const c of cases) {
    const { peer, rel, plan } = await openCycle();
    const store = rx.stores.get(rel);
    const frame = Buffer.concat(
      encodeFrame({ relationshipKey: peer.key, epoch: 1, seq: ++peer.seq }, c.message),
    );
    const at = c.flipAt(frame.length);
    frame[at] = (frame[at] ?? 0) ^ (1 + rng.int(255));
    peer.socket.write(frame);
    peer.send(cycleEnd('c1', plan));
    await expectRefused(peer, 'SECONDSITE_ERR_BAD_FRAME', rel);
    assert.equal(store?.chunksWritten, 0, `seed ${SEED}: ${c.name}`);
  }
});

test('a corrupted header is refused', async () => {
  const { peer, rel } = await openCycle();
  const frame = Buffer.concat(
    encodeFrame(
      { relationshipKey: peer.key, epoch: 1, seq: ++peer.seq },
      dataMessage(0, Buffer.alloc(CHUNK, 5)),
    ),
  );
  frame[30] = (frame[30] ?? 0) ^ 0x10; // inside epoch/seq, header checksum now wrong
  peer.socket.write(frame);
  await expectRefused(peer, 'SECONDSITE_ERR_BAD_FRAME', rel);
});

/** A DATA payload with arbitrary (possibly hostile) field values, built field by field. */
function hostileData(f: {
  diskIndex?: number;
  offsetHi?: number;
  offsetLo?: number;
  lengthBytes: number;
  body: Buffer;
}): Buffer {
  const p = Buffer.alloc(2 + 8 + 4 + 1 + 32);
  p.writeUInt16BE(f.diskIndex ?? 0, 0);
  p.writeUInt32BE(f.offsetHi ?? 0, 2);
  p.writeUInt32BE(f.offsetLo ?? 0, 6);
  p.writeUInt32BE(f.lengthBytes >>> 0, 10);
  p.writeUInt8(0, 14);
  sha(f.body).copy(p, 15);
  return Buffer.concat([p, f.body]);
}

const hostile: Array<[string, Parameters<typeof hostileData>[0]]> = [
  ['offset beyond the disk', { offsetLo: DISK_BYTES - 100, lengthBytes: 4096, body: Buffer.alloc(4096, 1) }],
  [
    'offset + length past the end by one',
    { offsetLo: DISK_BYTES - 4095, lengthBytes: 4096, body: Buffer.alloc(4096, 1) },
  ],
  [
    'offset near 2^64 (negative after a 64-bit wrap)',
    { offsetHi: 0xffffffff, offsetLo: 0xfffff000, lengthBytes: 4096, body: Buffer.alloc(4096, 1) },
  ],
  ['length 0', { lengthBytes: 0, body: Buffer.alloc(0) }],
  ['length 2^32-1', { lengthBytes: 0xffffffff, body: Buffer.alloc(16, 1) }],
  ['length above the chunk cap', { lengthBytes: 16 * 1024 * 1024 + 1, body: Buffer.alloc(16, 1) }],
  ['length larger than the body', { lengthBytes: 8192, body: Buffer.alloc(4096, 1) }],
  ['unknown disk', { diskIndex: 7, lengthBytes: 4096, body: Buffer.alloc(4096, 1) }],
];

for (const [name, fields] of hostile) {
  test(`data frame with ${name} is refused without staging`, async () => {
    const { peer, rel } = await openCycle();
    peer.sendPayload('data', hostileData(fields));
    await expectRefused(peer, 'SECONDSITE_ERR_BAD_FRAME', rel);
    assert.equal(rx.stores.get(rel)?.chunksWritten, 0);
  });
}

test('a header announcing a 4 GiB payload is refused at once, without waiting for (or allocating) it', async () => {
  const { peer, rel } = await openCycle();
  const header = buildFrame({
    type: FRAME_TYPES.data,
    key: peer.key,
    epoch: 1,
    seq: ++peer.seq,
    payload: Buffer.alloc(0),
    payloadLength: 0xffffffff,
  });
  assert.equal(header.length, HEADER_BYTES);
  const t0 = Date.now();
  peer.socket.write(header);
  await expectRefused(peer, 'SECONDSITE_ERR_BAD_FRAME', rel);
  assert.ok(Date.now() - t0 < 3000);
});

test('an unknown frame type and unknown flags are refused', async () => {
  for (const [type, flags] of [
    [99, 0],
    [FRAME_TYPES.zero, 0x80],
  ] as const) {
    const { peer, rel } = await openCycle();
    peer.socket.write(
      buildFrame({ type, flags, key: peer.key, epoch: 1, seq: ++peer.seq, payload: Buffer.alloc(18) }),
    );
    await expectRefused(peer, 'SECONDSITE_ERR_BAD_FRAME', rel);
  }
});

test('a zero extent beyond the disk and one for an unknown disk are refused', async () => {
  for (const m of [
    { kind: 'zero', diskIndex: 0, offsetBytes: DISK_BYTES, lengthBytes: 1 },
    { kind: 'zero', diskIndex: 3, offsetBytes: 0, lengthBytes: 4096 },
  ] as const) {
    const { peer, rel } = await openCycle();
    peer.send(m);
    await expectRefused(peer, 'SECONDSITE_ERR_BAD_FRAME', rel);
    assert.equal(rx.stores.get(rel)?.zeroRanges, 0);
  }
});

test('cycle-end before the plan is covered commits nothing', async () => {
  const { peer, rel, plan } = await openCycle();
  peer.send(dataMessage(0, Buffer.alloc(CHUNK, 1)));
  peer.send(cycleEnd('c1', plan));
  await expectRefused(peer, 'SECONDSITE_ERR_PROTOCOL', rel);
});

async function resumeWithSender(rel: string, data: Buffer, cycleId: string): Promise<number> {
  const sender = makeSender(pki.hostA, rx.port, { relationshipId: rel, policy: { chunkBytes: CHUNK } });
  const r = await sender.shipCycle({
    cycleId,
    cutWallMs: 10,
    consistency: 'crash-consistent',
    snapshots: [new MemoryCycleSnapshot('d', data)],
  });
  sender.disconnect();
  assert.ok(rx.stores.get(rel)?.latestImage('d').equals(data), `image after resume, seed ${SEED}`);
  assert.equal(rx.stores.get(rel)?.points().length, 1);
  return r.logicalBytesSent;
}

for (const how of ['truncated frame then EOF', 'EOF mid-payload', 'reset mid-cycle'] as const) {
  test(`${how}: no point; the sender then resumes the same cycle from durable progress`, async () => {
    const { peer, rel } = await openCycle('c1');
    const data = new Rng(SEED + 7).fill(Buffer.alloc(DISK_BYTES)) as Buffer;
    // 4 good chunks, synced and acked
    for (let o = 0; o < 4 * CHUNK; o += CHUNK)
      peer.send(dataMessage(o, data.subarray(o, o + CHUNK)), { flags: o === 3 * CHUNK ? FLAG_SYNC : 0 });
    assert.equal((await peer.next())?.message.kind, 'ack');
    const next = Buffer.concat(
      encodeFrame(
        { relationshipKey: peer.key, epoch: 1, seq: ++peer.seq },
        dataMessage(4 * CHUNK, data.subarray(4 * CHUNK, 5 * CHUNK)),
      ),
    );
    if (how === 'truncated frame then EOF') peer.socket.end(next.subarray(0, 40));
    else if (how === 'EOF mid-payload') peer.socket.end(next.subarray(0, HEADER_BYTES + 1000));
    else {
      peer.socket.write(next.subarray(0, HEADER_BYTES + 1000));
      await new Promise((r) => setTimeout(r, 50));
      peer.socket.destroy();
    }
    await peer.closedPromise;
    await new Promise((r) => setTimeout(r, 100));
    const store = rx.stores.get(rel);
    assert.equal(store?.points().length, 0, 'no point after a cut cycle');
    assert.equal(store?.chunksWritten, 4, 'the partial chunk was not staged');
    const sent = await resumeWithSender(rel, data, 'c1');
    assert.equal(sent, DISK_BYTES - 4 * CHUNK, 'the resumed cycle skipped the 4 durable chunks');
  });
}

test('a replayed frame right after a complete cycle: the point is committed and reported, the replay refused', async () => {
  const { peer, rel, plan } = await openCycle();
  const data = new Rng(SEED + 9).fill(Buffer.alloc(DISK_BYTES)) as Buffer;
  for (let o = 0; o < DISK_BYTES; o += CHUNK) peer.send(dataMessage(o, data.subarray(o, o + CHUNK)));
  const end = Buffer.concat(
    encodeFrame({ relationshipKey: peer.key, epoch: 1, seq: ++peer.seq }, cycleEnd('c1', plan)),
  );
  peer.socket.write(Buffer.concat([end, end])); // the second copy is a replay (same seq)
  const kinds: string[] = [];
  for (let f = await peer.next(); f; f = await peer.next()) kinds.push(f.message.kind);
  assert.ok(kinds.includes('point-committed'), kinds.join(','));
  assert.equal(kinds.at(-1), 'error');
  assert.equal(rx.stores.get(rel)?.points().length, 1);
});

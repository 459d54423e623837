import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { isSecondsiteError } from '../../domain/errors.js';
import { Rng, seedFrom } from '../../domain/random.js';
import { chunkChecksum } from './cycle-digest.js';
import {
  FrameReader,
  HEADER_BYTES,
  MAX_PAYLOAD_BYTES,
  checkedPayloadBytes,
  encodeFrame,
  relationshipKeyOf,
} from './frame-codec.js';
import { checkEpoch, checkHeaderInSession, checkMessageInSession, newSessionContext } from './frame-rules.js';
import { DATA_FIELDS_BYTES, MAX_RETENTION_HOURS, decodeMessage, encodeMessage } from './messages.js';
import type { Message } from './messages.js';

const SEED = seedFrom(process.env.SECONDSITE_SEED, 4242);
const key = relationshipKeyOf('vm-1');
const digest = createHash('sha256').update('x').digest();

const samples: Message[] = [
  {
    kind: 'hello',
    retentionHours: 24,
    vmConfig: '{"name":"vm 1","nics":[],"guest":{}}',
    primaryHostId: 'host-a',
    relationshipId: 'vm-1',
    storageLocation: 'gold',
    disks: [
      { diskId: 'd0', sizeBytes: 2 ** 40 },
      { diskId: 'd1', sizeBytes: 1 },
    ],
  },
  {
    kind: 'welcome',
    replicaHostId: 'host-b',
    epoch: 3,
    lastPoint: { pointId: 'p1', sequence: 9, cycleId: 'c9', cutWallMs: 1_700_000_000_000 },
  },
  { kind: 'welcome', replicaHostId: 'host-b', epoch: 3, lastPoint: null },
  {
    kind: 'cycle-begin',
    cycleId: 'c1',
    cutWallMs: 5,
    consistency: 'app-consistent',
    mode: 'resync',
    planExtentCount: 2,
    planDigest: digest,
  },
  {
    kind: 'plan',
    extents: [
      { diskIndex: 0, offsetBytes: 0, lengthBytes: 4096 },
      { diskIndex: 1, offsetBytes: 2 ** 45, lengthBytes: 2 ** 33 },
    ],
  },
  {
    kind: 'cycle-ready',
    cycleId: 'c1',
    staged: [{ diskIndex: 0, offsetBytes: 8192, lengthBytes: 4096 }],
    adopted: [{ diskIndex: 1, offsetBytes: 2 ** 40, lengthBytes: 2 ** 20 }],
    last: true,
  },
  { kind: 'digests', chunks: [{ diskIndex: 0, offsetBytes: 0, lengthBytes: 65536, digest }] },
  {
    kind: 'diff',
    count: 11,
    differs: [true, false, false, true, true, false, false, false, true, false, true],
  },
  {
    kind: 'data',
    diskIndex: 0,
    offsetBytes: 4096,
    lengthBytes: 5,
    compression: 'none',
    dataChecksum: digest,
    body: Buffer.from('hello'),
  },
  { kind: 'zero', diskIndex: 1, offsetBytes: 0, lengthBytes: 2 ** 40 },
  { kind: 'cycle-end', cycleId: 'c1', cutWallMs: 5, consistency: 'crash-consistent', cycleDigest: digest },
  { kind: 'ack', ackedSeq: 17, stagedBytes: 2 ** 36 },
  { kind: 'point-committed', pointId: 'p2', sequence: 2, cycleId: 'c1', cutWallMs: 5, committedWallMs: 6 },
  { kind: 'error', code: 'SECONDSITE_ERR_STALE_EPOCH', message: 'fenced' },
];

function frameOf(m: Message, seq = 1, epoch = 3): Buffer {
  return Buffer.concat(encodeFrame({ relationshipKey: key, epoch, seq }, m));
}

test('every message roundtrips through the framing, also when fed one byte at a time', () => {
  const all = Buffer.concat(samples.map((m, i) => frameOf(m, i + 1)));
  const reader = new FrameReader();
  const got: Message[] = [];
  for (let i = 0; i < all.length; i++) {
    reader.push(all.subarray(i, i + 1));
    for (let f = reader.next(); f; f = reader.next()) got.push(f.message);
  }
  assert.equal(got.length, samples.length);
  samples.forEach((m, i) => assert.deepEqual(got[i], m, m.kind));
  assert.equal(reader.midFrame, false);
});

test('flipping any single bit of a frame is detected (header or payload checksum, or a field check)', () => {
  for (const m of samples.filter((x) => x.kind !== 'data')) {
    const frame = frameOf(m);
    for (let bit = 0; bit < frame.length * 8; bit++) {
      const bad = Buffer.from(frame);
      bad[bit >> 3] = (bad[bit >> 3] ?? 0) ^ (1 << (bit & 7));
      const reader = new FrameReader();
      reader.push(bad);
      assert.throws(
        () => reader.next(),
        (e) => isSecondsiteError(e, 'SECONDSITE_ERR_BAD_FRAME'),
        `${m.kind}: bit ${bit} not detected`,
      );
    }
  }
});

test('DATA: a flipped bit in the header or fields fails the frame; in the body, the chunk checksum', () => {
  const body = Buffer.from('hello, chunk');
  const m: Message = {
    kind: 'data',
    diskIndex: 0,
    offsetBytes: 4096,
    lengthBytes: body.length,
    compression: 'none',
    dataChecksum: chunkChecksum(body),
    body,
  };
  const frame = frameOf(m);
  assert.equal(frame.length, HEADER_BYTES + DATA_FIELDS_BYTES + body.length);
  for (let bit = 0; bit < frame.length * 8; bit++) {
    const bad = Buffer.from(frame);
    bad[bit >> 3] = (bad[bit >> 3] ?? 0) ^ (1 << (bit & 7));
    const reader = new FrameReader();
    reader.push(bad);
    if (bit < (HEADER_BYTES + DATA_FIELDS_BYTES) * 8) {
      assert.throws(
        () => reader.next(),
        (e) => isSecondsiteError(e, 'SECONDSITE_ERR_BAD_FRAME'),
        `bit ${bit} (header or fields) not detected`,
      );
      continue;
    }
    // the body is covered end to end: the frame decodes, its chunk checksum does not match
    const got = reader.next()?.message;
    assert.equal(got?.kind, 'data');
    if (got?.kind !== 'data') continue;
    assert.equal(chunkChecksum(got.body).equals(got.dataChecksum), false, `bit ${bit} (body) not detected`);
  }
  assert.equal(checkedPayloadBytes('data', 1 << 20), DATA_FIELDS_BYTES);
  assert.equal(checkedPayloadBytes('zero', 26), 26);
});

test('DATA: a payload too short for its fields, or with altered fields under a valid body, is refused', () => {
  const body = Buffer.alloc(64, 7);
  const m: Message = {
    kind: 'data',
    diskIndex: 0,
    offsetBytes: 0,
    lengthBytes: body.length,
    compression: 'none',
    dataChecksum: chunkChecksum(body),
    body,
  };
  const reframe = (payload: Buffer): Buffer => {
    const header = Buffer.from(encodeFrame({ relationshipKey: key, epoch: 3, seq: 1 }, m)[0] as Buffer);
    header.writeUInt32BE(payload.length, 40);
    const checked = payload.subarray(0, checkedPayloadBytes('data', payload.length));
    createHash('sha256').update(checked).digest().copy(header, 44, 0, 16);
    createHash('sha256').update(header.subarray(0, 60)).digest().copy(header, 60, 0, 8);
    return Buffer.concat([header, payload]);
  };
  const payload = Buffer.concat(encodeMessage(m));
  // a consistent checksum over a payload shorter than the DATA fields: the decoder refuses it
  for (const n of [0, 1, 14, DATA_FIELDS_BYTES - 1]) {
    const reader = new FrameReader();
    reader.push(reframe(payload.subarray(0, n)));
    assert.throws(
      () => reader.next(),
      (e) => isSecondsiteError(e, 'SECONDSITE_ERR_BAD_FRAME'),
      `a ${n}-byte DATA payload was accepted`,
    );
  }
  // the offset changed after the checksum was computed (body untouched): the payload checksum fails
  const moved = Buffer.from(frameOf(m));
  moved.writeUInt32BE(1, HEADER_BYTES + 2 + 4);
  const reader = new FrameReader();
  reader.push(moved);
  assert.throws(() => reader.next(), /payload checksum mismatch/);
});

test('a frame of protocol version 1 (payload checksum over the DATA body) is refused', () => {
  const frame = frameOf(samples[11] as Message);
  frame.writeUInt16BE(1, 4);
  createHash('sha256').update(frame.subarray(0, 60)).digest().copy(frame, 60, 0, 8);
  const reader = new FrameReader();
  reader.push(frame);
  assert.throws(() => reader.next(), /protocol version 1 not supported/);
});

test('random garbage only ever fails with BAD_FRAME', () => {
  const rng = new Rng(SEED);
  for (let i = 0; i < 2000; i++) {
    const buf = rng.fill(Buffer.alloc(HEADER_BYTES + rng.int(200))) as Buffer;
    if (rng.chance(0.5)) buf.writeUInt32BE(0x53535250, 0);
    const reader = new FrameReader();
    reader.push(buf);
    try {
      reader.next();
    } catch (e) {
      assert.ok(isSecondsiteError(e, 'SECONDSITE_ERR_BAD_FRAME'), `seed ${SEED} case ${i}: ${String(e)}`);
    }
  }
});

test('a header announcing more than the cap is refused from the header alone', () => {
  const frame = frameOf(samples[11] as Message);
  frame.writeUInt32BE(MAX_PAYLOAD_BYTES + 1, 40);
  createHash('sha256').update(frame.subarray(0, 60)).digest().copy(frame, 60, 0, 8);
  const reader = new FrameReader();
  reader.push(frame.subarray(0, HEADER_BYTES));
  assert.throws(() => reader.next(), /exceeds the cap/);
});

test('trailing bytes inside a payload are refused', () => {
  const m = samples[11] as Message;
  const parts = encodeFrame({ relationshipKey: key, epoch: 3, seq: 1 }, { ...m });
  // re-frame with one extra payload byte
  const payload = Buffer.concat([...parts.slice(1), Buffer.from([0])]);
  const header = Buffer.from(parts[0] as Buffer);
  header.writeUInt32BE(payload.length, 40);
  createHash('sha256').update(payload).digest().copy(header, 44, 0, 16);
  createHash('sha256').update(header.subarray(0, 60)).digest().copy(header, 60, 0, 8);
  const reader = new FrameReader();
  reader.push(Buffer.concat([header, payload]));
  assert.throws(() => reader.next(), /trailing/);
});

test('session rules: direction, seq exactly +1, relationship, epoch fencing, extents within disks', () => {
  const ctx = newSessionContext('sender');
  ctx.relationshipKey = key;
  ctx.epoch = 3;
  ctx.disks = [{ diskId: 'd0', sizeBytes: 1 << 20 }];
  const h = { kind: 'data' as const, flags: 0, relationshipKey: key, epoch: 3, seq: 1, payloadLength: 0 };
  checkHeaderInSession(h, ctx);
  assert.throws(() => checkHeaderInSession(h, ctx), /replayed or reordered/);
  assert.throws(() => checkHeaderInSession({ ...h, seq: 3 }, ctx), /replayed or reordered/);
  assert.throws(() => checkHeaderInSession({ ...h, seq: 2, kind: 'ack' }, ctx), /may not send/);
  assert.throws(
    () => checkHeaderInSession({ ...h, seq: 2, relationshipKey: relationshipKeyOf('vm-2') }, ctx),
    /another relationship/,
  );
  assert.throws(
    () => checkHeaderInSession({ ...h, seq: 2, epoch: 2 }, ctx),
    (e) => isSecondsiteError(e, 'SECONDSITE_ERR_STALE_EPOCH'),
  );
  assert.throws(
    () => checkEpoch(4, 3, 'sender'),
    (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'),
  );
  // on the sender side a replica at a newer epoch means this primary is the stale one
  assert.throws(
    () => checkEpoch(4, 3, 'receiver'),
    (e) => isSecondsiteError(e, 'SECONDSITE_ERR_STALE_EPOCH'),
  );
  const zero = (offsetBytes: number, lengthBytes: number, diskIndex = 0): Message => ({
    kind: 'zero',
    diskIndex,
    offsetBytes,
    lengthBytes,
  });
  checkMessageInSession(zero(0, 1 << 20), ctx);
  assert.throws(() => checkMessageInSession(zero(1, 1 << 20), ctx), /beyond disk/);
  assert.throws(() => checkMessageInSession(zero(0, 4096, 1), ctx), /unknown disk/);
  assert.throws(
    () => checkMessageInSession(zero(Number.MAX_SAFE_INTEGER, 4096), ctx),
    /beyond disk|bad range/,
  );
});

test('HELLO carries the retention hours and refuses more than a year', () => {
  const hello = {
    kind: 'hello' as const,
    primaryHostId: 'host-a',
    relationshipId: 'vm1',
    storageLocation: 'default',
    disks: [{ diskId: 'd0', sizeBytes: 4096 }],
    retentionHours: 72,
    vmConfig: '',
  };
  assert.deepEqual(decodeMessage('hello', Buffer.concat(encodeMessage(hello))), hello);
  assert.throws(
    () =>
      decodeMessage(
        'hello',
        Buffer.concat(encodeMessage({ ...hello, retentionHours: MAX_RETENTION_HOURS + 1 })),
      ),
    (e) => isSecondsiteError(e, 'SECONDSITE_ERR_BAD_FRAME') && /retention/.test(e.message),
  );
  // a VM definition beyond its cap is refused before anything reads it (forged length prefix)
  const body = Buffer.concat(encodeMessage(hello));
  const forged = Buffer.concat([body.subarray(0, body.length - 2), Buffer.from([0xff, 0xff])]);
  assert.throws(
    () => decodeMessage('hello', forged),
    (e) => isSecondsiteError(e, 'SECONDSITE_ERR_BAD_FRAME') && /vmConfig/.test(e.message),
  );
});

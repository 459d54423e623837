/**
 * Seeded mutation fuzzing of whole sessions against a live receiver: a valid session's frames are
 * recorded, then replayed with one mutation (a flipped byte, a dropped, duplicated or swapped frame, or
 * a truncation). Every mutated session must be refused or cut without a point; the unmutated session
 * must commit; and the receiver must keep serving afterwards.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Rng } from '../../src/domain/random.js';
import { cycleDigestOf, planDigestOf } from '../../src/protocol/replication/cycle-digest.js';
import { encodeFrame, relationshipKeyOf } from '../../src/protocol/replication/frame-codec.js';
import type { Message } from '../../src/protocol/replication/messages.js';
import { RawPeer } from './raw-peer.js';
import { SEED, createPki, startReceiver } from './replication-fixture.js';
import type { Pki, TestReceiver } from './replication-fixture.js';

const DISK = 256 * 1024;
const CHUNK = 32 * 1024;
let pki: Pki;
let rx: TestReceiver;

before(async () => {
  pki = await createPki();
  rx = await startReceiver(pki, { frameTimeoutMs: 1500 });
});

after(async () => {
  await rx.stop();
  await pki.cleanup();
});

/** The frames of one valid session (after HELLO) for relationship `rel`. */
function sessionFrames(rel: string, data: Buffer): Buffer[] {
  const key = relationshipKeyOf(rel);
  const plan = [{ diskIndex: 0, offsetBytes: 0, lengthBytes: DISK }];
  const planDigest = planDigestOf(plan);
  const msgs: Message[] = [
    {
      kind: 'cycle-begin',
      cycleId: 'c',
      cutWallMs: 7,
      consistency: 'crash-consistent',
      mode: 'incremental',
      planExtentCount: 1,
      planDigest,
    },
    { kind: 'plan', extents: plan },
  ];
  for (let o = 0; o < DISK; o += CHUNK) {
    const body = data.subarray(o, o + CHUNK);
    msgs.push({
      kind: 'data',
      diskIndex: 0,
      offsetBytes: o,
      lengthBytes: CHUNK,
      compression: 'none',
      dataChecksum: createHash('sha256').update(body).digest(),
      body,
    });
  }
  msgs.push({
    kind: 'cycle-end',
    cycleId: 'c',
    cutWallMs: 7,
    consistency: 'crash-consistent',
    cycleDigest: cycleDigestOf({ cycleId: 'c', cutWallMs: 7, consistency: 'crash-consistent', planDigest }),
  });
  // seq 1 is HELLO
  return msgs.map((m, i) => Buffer.concat(encodeFrame({ relationshipKey: key, epoch: 1, seq: i + 2 }, m)));
}

/** Plays a session; resolves with whether a point-committed frame came back. */
async function play(rel: string, frames: Buffer[]): Promise<boolean> {
  const peer = await RawPeer.connect(rx.port, pki.hostA, rel);
  const welcome = await peer.hello([{ diskId: 'd', sizeBytes: DISK }], rel);
  assert.equal(welcome?.message.kind, 'welcome');
  for (const f of frames) peer.socket.write(f);
  for (;;) {
    const f = await peer.next(4000).catch(() => null);
    if (!f || f.message.kind === 'error') {
      peer.socket.destroy();
      return false;
    }
    if (f.message.kind === 'point-committed') {
      peer.end();
      return true;
    }
  }
}

test('mutated sessions never commit a point; the receiver keeps serving (seeded)', async () => {
  const rng = new Rng(SEED);
  const data = rng.fill(Buffer.alloc(DISK)) as Buffer;
  const kinds = ['flip', 'drop', 'duplicate', 'swap', 'truncate'] as const;
  for (let i = 0; i < 25; i++) {
    const rel = `fuzz-${i}`;
    const frames = sessionFrames(rel, data);
    const kind = kinds[i % kinds.length] as (typeof kinds)[number];
    // (a duplicate of the final CYCLE_END comes after a complete, valid session: not a mutation of it)
    const at = rng.int(kind === 'duplicate' ? frames.length - 1 : frames.length);
    const f = frames[at] as Buffer;
    if (kind === 'flip') {
      const b = Buffer.from(f);
      const pos = rng.int(b.length);
      b[pos] = (b[pos] ?? 0) ^ (1 + rng.int(255));
      frames[at] = b;
    } else if (kind === 'drop') frames.splice(at, 1);
    else if (kind === 'duplicate') frames.splice(at, 0, f);
    else if (kind === 'swap') {
      const j = at === frames.length - 1 ? at - 1 : at + 1;
      [frames[at], frames[j]] = [frames[j] as Buffer, f];
    } else frames.splice(at, frames.length, f.subarray(0, 1 + rng.int(f.length - 1)));
    const committed = await play(rel, frames);
    assert.equal(committed, false, `seed ${SEED} case ${i} (${kind} at frame ${at}) committed a point`);
    assert.equal(rx.stores.get(rel)?.points().length ?? 0, 0, `seed ${SEED} case ${i}`);
  }
  // control: the same session unmutated commits, and the image is exact
  assert.equal(await play('fuzz-control', sessionFrames('fuzz-control', data)), true);
  assert.ok(rx.stores.get('fuzz-control')?.latestImage('d').equals(data));
});

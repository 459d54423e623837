import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../domain/random.js';
import {
  encodeRecord,
  encodeSuperblock,
  planFormat,
  slotOfSeq,
  slotOffsetBytes,
  type GuestLogFormat,
} from './guest-log.format.js';
import { validateGuestLog } from './guest-log.validator.js';

const SEED = Number(process.env.SECONDSITE_SEED ?? 20261122);

function image(diskBytes: number, payloadBytes = 100): { img: Buffer; f: GuestLogFormat } {
  const img = Buffer.alloc(diskBytes);
  const f = planFormat(diskBytes, payloadBytes, 'vm-test', 1_700_000_000_000);
  encodeSuperblock(f).copy(img, 0);
  return { img, f };
}

function writeRecords(img: Buffer, f: GuestLogFormat, fromSeq: number, toSeq: number): void {
  for (let seq = fromSeq; seq <= toSeq; seq++)
    encodeRecord(f, {
      seq,
      incarnation: 1,
      timestampWallMs: 1_700_000_000_000 + seq,
      guestId: 'vm-test',
    }).copy(img, slotOffsetBytes(f, slotOfSeq(f, seq)));
}

const reader = (img: Buffer) => (o: number, l: number) =>
  Promise.resolve(Buffer.from(img.subarray(o, o + l)));
const validate = (img: Buffer) => validateGuestLog(reader(img), img.length, { chunkBytes: 8192 });

function damage(img: Buffer, f: GuestLogFormat, slot: number, how: 'flip' | 'zero' | 'tear'): void {
  const at = slotOffsetBytes(f, slot);
  if (how === 'zero') img.fill(0, at, at + f.slotBytes);
  else if (how === 'flip') img[at + 100 + (slot % 50)] = (img[at + 100 + (slot % 50)] ?? 0) ^ 0x40;
  else img.fill(0xa5, at + 512 < at + f.slotBytes ? at + 512 : at + 200, at + f.slotBytes);
}

test('a blank disk is an empty valid log; a disk with data and no superblock is refused', async () => {
  const blank = Buffer.alloc(64 * 1024);
  const r = await validate(blank);
  assert.equal(r.valid, true);
  assert.equal(r.formatted, false);
  assert.equal(r.lastSeq, 0);
  blank[40_000] = 1;
  const bad = await validate(blank);
  assert.equal(bad.valid, false);
  assert.equal(bad.problem?.kind, 'not-blank');
  assert.equal(bad.problem?.offsetBytes, 40_000);
});

test('a corrupt superblock is refused unless nothing else was written (a format torn by a crash)', async () => {
  const { img, f } = image(64 * 1024);
  img[20] = (img[20] ?? 0) ^ 1;
  const torn = await validate(img);
  assert.deepEqual([torn.valid, torn.formatted, torn.tornTail, torn.lastSeq], [true, false, true, 0]);
  writeRecords(img, f, 1, 3);
  const r = await validate(img);
  assert.equal(r.valid, false);
  assert.equal(r.problem?.kind, 'bad-superblock');
});

test('records validate; a torn last slot is the end of the log; damage in the middle is named', async () => {
  const { img, f } = image(64 * 1024);
  writeRecords(img, f, 1, 40);
  let r = await validate(img);
  assert.deepEqual([r.valid, r.firstSeq, r.lastSeq, r.recordCount, r.tornTail], [true, 1, 40, 40, false]);
  assert.equal(r.lastRecord?.guestId, 'vm-test');

  const torn = Buffer.from(img);
  damage(torn, f, 40, 'tear');
  r = await validate(torn);
  assert.deepEqual([r.valid, r.lastSeq, r.tornTail], [true, 40, true]);

  const mid = Buffer.from(img);
  damage(mid, f, 17, 'flip');
  r = await validate(mid);
  assert.equal(r.valid, false);
  assert.equal(r.problem?.kind, 'corrupt-record');
  assert.equal(r.problem?.slot, 17);
  assert.match(r.problem?.message ?? '', /slot 17 .*corrupt \(bad checksum\) where record 18 belongs/);

  const hole = Buffer.from(img);
  damage(hole, f, 5, 'zero');
  r = await validate(hole);
  assert.equal(r.problem?.kind, 'hole');
  assert.equal(r.problem?.slot, 5);

  const stale = Buffer.from(img);
  writeRecords(stale, f, 45, 45); // a record after a gap
  r = await validate(stale);
  assert.equal(r.valid, false);
  assert.equal(r.problem?.kind, 'hole');

  const after = Buffer.from(img);
  damage(after, f, 40, 'tear');
  damage(after, f, 42, 'tear'); // garbage after the torn end
  r = await validate(after);
  assert.equal(r.problem?.kind, 'corrupt-record');
  assert.equal(r.problem?.slot, 42);
});

test('a wrapped (circular) log validates; only the slot after the newest may be torn', async () => {
  const { img, f } = image(32 * 1024, 100);
  const n = f.slotCount;
  const last = 2 * n + 5;
  writeRecords(img, f, 1, last);
  let r = await validate(img);
  assert.deepEqual([r.valid, r.firstSeq, r.lastSeq, r.recordCount], [true, last - n + 1, last, n]);
  const torn = Buffer.from(img);
  damage(torn, f, slotOfSeq(f, last + 1), 'tear');
  r = await validate(torn);
  assert.deepEqual([r.valid, r.lastSeq, r.recordCount, r.tornTail], [true, last, n - 1, true]);
  const zeroHead = Buffer.from(img);
  damage(zeroHead, f, slotOfSeq(f, last + 1), 'zero');
  r = await validate(zeroHead);
  assert.equal(r.problem?.kind, 'hole');
});

test('seeded: random logs with random damage validate exactly when the damage is at the end', async () => {
  const rng = new Rng(SEED);
  for (let c = 0; c < 150; c++) {
    const payloadBytes = rng.int(900);
    const { img, f } = image((8 + rng.int(24)) * 1024, payloadBytes);
    const n = f.slotCount;
    const last = rng.int(3 * n) + 1;
    writeRecords(img, f, 1, last);
    const first = Math.max(1, last - n + 1);
    const target = first + rng.int(last - first + 1); // a record in the log
    const how = rng.pick(['flip', 'zero', 'tear'] as const);
    damage(img, f, slotOfSeq(f, target), how);
    const r = await validate(img);
    const msg = `seed ${SEED} case ${c}: n=${n} last=${last} target=${target} how=${how} -> ${JSON.stringify(r.problem)}`;
    // Damaging the newest record looks like a torn write of it: valid, one record shorter (a zeroed
    // newest record too, unless the log had wrapped, where the slot after the newest must not be blank).
    const endDamage = target === last && (how !== 'zero' || last <= n);
    // Damaging the oldest record of a full wrapped log is a torn overwrite at the head.
    const headDamage = last >= n && target === last - n + 1 && how !== 'zero';
    if (endDamage) {
      assert.equal(r.valid, true, msg);
      assert.equal(r.lastSeq, last - 1, msg);
    } else if (headDamage) {
      assert.equal(r.valid, true, msg);
      assert.equal(r.lastSeq, last, msg);
      assert.equal(r.recordCount, n - 1, msg);
    } else {
      assert.equal(r.valid, false, msg);
      assert.equal(r.problem?.slot, slotOfSeq(f, target), msg);
    }
  }
});

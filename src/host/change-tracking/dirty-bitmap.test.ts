import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, seedFrom } from '../../domain/random.js';
import { DirtyBitmap } from './dirty-bitmap.js';

function modelRuns(bits: boolean[], first: number, end: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = -1;
  for (let i = first; i < end; i++) {
    if (bits[i] && start < 0) start = i;
    if (!bits[i] && start >= 0) {
      out.push([start, i]);
      start = -1;
    }
  }
  if (start >= 0) out.push([start, end]);
  return out;
}

test('set, setRange, runs, count, or and resize agree with a boolean-array model', () => {
  const seed = seedFrom(process.env.SECONDSITE_SEED, 77);
  const rng = new Rng(seed);
  for (let round = 0; round < 200; round++) {
    const n = 1 + rng.int(300);
    const bm = new DirtyBitmap(n);
    const model: boolean[] = new Array<boolean>(n).fill(false);
    for (let k = 0; k < rng.int(12); k++) {
      const a = rng.int(n);
      const b = a + rng.int(n - a + 1);
      if (rng.chance(0.3)) {
        bm.set(a);
        model[a] = true;
      } else {
        bm.setRange(a, b);
        for (let i = a; i < b; i++) model[i] = true;
      }
    }
    const msg = `seed ${seed}, round ${round}, n ${n}`;
    for (let i = 0; i < n; i++) assert.equal(bm.get(i), model[i], msg);
    assert.deepEqual(bm.runs(), modelRuns(model, 0, n), msg);
    const a = rng.int(n);
    const b = a + rng.int(n - a + 1);
    assert.deepEqual(bm.runs(a, b), modelRuns(model, a, b), msg);
    assert.equal(bm.count(), model.filter(Boolean).length, msg);
    assert.equal(bm.isEmpty(), !model.includes(true), msg);
    const other = new DirtyBitmap(n);
    other.setRange(0, Math.floor(n / 2));
    bm.orWith(other);
    for (let i = 0; i < Math.floor(n / 2); i++) model[i] = true;
    assert.deepEqual(bm.runs(), modelRuns(model, 0, n), msg);
    const m = 1 + rng.int(300);
    const r = bm.resized(m);
    const rModel = Array.from({ length: m }, (_, i) => (i < n ? (model[i] ?? false) : false));
    assert.deepEqual(r.runs(), modelRuns(rModel, 0, m), msg);
  }
});

test('setAll never sets bits past the end; serialized bytes are stable', () => {
  const bm = new DirtyBitmap(13);
  bm.setAll();
  assert.deepEqual([...bm.bytes], [0xff, 0x1f]);
  assert.equal(bm.count(), 13);
  assert.deepEqual(bm.runs(), [[0, 13]]);
  bm.clearAll();
  bm.set(9);
  assert.deepEqual([...bm.bytes], [0, 2]);
  const back = new DirtyBitmap(13, bm.copy().bytes);
  assert.deepEqual(back.runs(), [[9, 10]]);
  assert.throws(() => new DirtyBitmap(13, new Uint8Array(3)), RangeError);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from './random.js';

test('Rng is deterministic for a seed and differs across seeds', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const seqA = Array.from({ length: 16 }, () => a.nextU32());
  const seqB = Array.from({ length: 16 }, () => b.nextU32());
  const seqC = Array.from({ length: 16 }, () => c.nextU32());
  assert.deepEqual(seqA, seqB);
  assert.notDeepEqual(seqA, seqC);
});

test('Rng.int stays in range and covers it', () => {
  const rng = new Rng(7);
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const v = rng.int(10);
    assert.ok(v >= 0 && v < 10);
    seen.add(v);
  }
  assert.equal(seen.size, 10);
});

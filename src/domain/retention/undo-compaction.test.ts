import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, seedFrom } from '../random.js';
import { nextUndoMerge } from './undo-compaction.js';

const SEED = seedFrom(process.env['SECONDSITE_SEED'], 20261123);

/** Merges until the plan says stop; returns the weights rewritten (the cost in cycles' undo). */
function compact(list: number[]): number {
  let rewritten = 0;
  for (let i = nextUndoMerge(list); i !== null; i = nextUndoMerge(list)) {
    const merged = (list[i] as number) + (list[i + 1] as number);
    rewritten += merged;
    list.splice(i, 2, merged);
  }
  return rewritten;
}

test('a list appended one cycle at a time stays a binary counter: strictly decreasing, log2 files, log2 rewrites', () => {
  const list: number[] = [];
  let rewritten = 0;
  for (let cycles = 1; cycles <= 4096; cycles++) {
    list.push(1);
    rewritten += compact(list);
    for (let i = 1; i < list.length; i++)
      assert.ok((list[i - 1] as number) > (list[i] as number), `${list.join(',')}`);
    assert.ok(list.length <= Math.floor(Math.log2(cycles)) + 1, `${cycles} cycles: ${list.length} files`);
    assert.equal(
      list.reduce((a, b) => a + b, 0),
      cycles,
    );
  }
  // each cycle's undo rewritten at most log2(4096) = 12 times; merging at drop time was ~2048 each
  assert.ok(rewritten <= 4096 * 12, `rewritten ${rewritten}`);
});

test('lists joined by dropped points converge to strictly decreasing weights with the same total', () => {
  const rng = new Rng(SEED);
  for (let round = 0; round < 200; round++) {
    const lists: number[][] = Array.from({ length: 1 + rng.int(6) }, () => [1]);
    for (let step = 0; step < 60; step++) {
      const k = rng.int(lists.length);
      if (rng.chance(0.3) && k + 1 < lists.length) {
        // drop the point after k: its list joins k's
        lists[k]?.push(...(lists[k + 1] as number[]));
        lists.splice(k + 1, 1);
      } else lists[k]?.push(1);
      const list = lists[rng.int(lists.length)] as number[];
      const total = list.reduce((a, b) => a + b, 0);
      compact(list);
      assert.equal(
        list.reduce((a, b) => a + b, 0),
        total,
        `seed=${SEED} round=${round}`,
      );
      assert.equal(nextUndoMerge(list), null, `seed=${SEED} round=${round}: ${list.join(',')}`);
      for (let i = 1; i < list.length; i++)
        assert.ok((list[i - 1] as number) > (list[i] as number), `seed=${SEED}: ${list.join(',')}`);
    }
  }
});

test('a list needing no merge answers null; an equal pair merges', () => {
  assert.equal(nextUndoMerge([]), null);
  assert.equal(nextUndoMerge([5]), null);
  assert.equal(nextUndoMerge([4, 2, 1]), null);
  assert.equal(nextUndoMerge([4, 2, 2]), 1);
  assert.equal(nextUndoMerge([1, 8, 1]), 0);
});

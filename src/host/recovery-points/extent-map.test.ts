import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, seedFrom } from '../../domain/random.js';
import { coalescedRanges, ExtentMap, gapsOf } from './extent-map.js';

// Values are "source positions": slicing by d moves the position by d, so every byte maps to a number
// that a flat array model can check exactly.
const SIZE = 300;

test('randomized: set, fillGaps and covered agree with a per-byte model', () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 99);
  const rng = new Rng(seed);
  for (let round = 0; round < 200; round++) {
    const map = new ExtentMap<number>((v, d) => v + d);
    const model: Array<number | null> = new Array<number | null>(SIZE).fill(null);
    for (let op = 0; op < 30; op++) {
      const off = rng.int(SIZE);
      const len = rng.int(SIZE - off + 1);
      const value = rng.int(1_000_000);
      if (rng.chance(0.5)) {
        map.set(off, len, value);
        for (let i = 0; i < len; i++) model[off + i] = value + i;
      } else {
        map.fillGaps(off, len, value);
        for (let i = 0; i < len; i++) if (model[off + i] === null) model[off + i] = value + i;
      }
      // Sorted, non-overlapping, non-empty.
      let end = -1;
      for (const e of map.entries()) {
        assert.ok(e.lengthBytes > 0 && e.offsetBytes >= end, `seed=${seed} round=${round}`);
        end = e.offsetBytes + e.lengthBytes;
      }
      const qOff = rng.int(SIZE);
      const qLen = rng.int(SIZE - qOff + 1);
      const got: Array<number | null> = new Array<number | null>(qLen).fill(null);
      const pieces = map.covered(qOff, qLen);
      for (const p of pieces)
        for (let i = 0; i < p.lengthBytes; i++) got[p.offsetBytes - qOff + i] = p.value + i;
      assert.deepEqual(got, model.slice(qOff, qOff + qLen), `seed=${seed} round=${round} op=${op}`);
      for (const g of gapsOf({ offsetBytes: qOff, lengthBytes: qLen }, pieces)) {
        for (let i = 0; i < g.lengthBytes; i++) assert.equal(model[g.offsetBytes + i], null, `seed=${seed}`);
      }
    }
    const ranges = coalescedRanges(map);
    for (let i = 1; i < ranges.length; i++) {
      const a = ranges[i - 1] as { offsetBytes: number; lengthBytes: number };
      assert.ok(a.offsetBytes + a.lengthBytes < (ranges[i] as { offsetBytes: number }).offsetBytes);
    }
    const covered = ranges.reduce((n, r) => n + r.lengthBytes, 0);
    assert.equal(covered, model.filter((v) => v !== null).length, `seed=${seed} round=${round}`);
  }
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, seedFrom } from '../random.js';
import { coalesce, coarsen, covers, splitAligned, subtract, totalBytes } from './extent-set.js';
import type { ByteRange } from './extent-set.js';

const SEED = seedFrom(process.env.SECONDSITE_SEED, 77);
const r = (offsetBytes: number, lengthBytes: number): ByteRange => ({ offsetBytes, lengthBytes });

test('coalesce merges overlapping and touching ranges and drops empty ones', () => {
  assert.deepEqual(coalesce([r(10, 5), r(0, 10), r(30, 0), r(14, 6), r(40, 2)]), [r(0, 20), r(40, 2)]);
});

test('covers, subtract and splitAligned agree with a byte-map model (seeded)', () => {
  const rng = new Rng(SEED);
  for (let round = 0; round < 300; round++) {
    const size = 1 + rng.int(300);
    const mk = (): ByteRange[] =>
      Array.from({ length: rng.int(6) }, () => {
        const o = rng.int(size);
        return r(o, 1 + rng.int(size - o));
      });
    const a = mk();
    const set = coalesce(mk());
    const inSet = new Uint8Array(size);
    for (const s of set) inSet.fill(1, s.offsetBytes, s.offsetBytes + s.lengthBytes);
    const diff = subtract(a, set);
    const model = new Uint8Array(size);
    for (const x of a) model.fill(1, x.offsetBytes, x.offsetBytes + x.lengthBytes);
    for (let i = 0; i < size; i++) if (inSet[i]) model[i] = 0;
    const got = new Uint8Array(size);
    for (const d of diff) got.fill(1, d.offsetBytes, d.offsetBytes + d.lengthBytes);
    assert.deepEqual(got, model, `subtract, seed ${SEED} round ${round}`);
    const o = rng.int(size);
    const l = 1 + rng.int(size - o);
    const modelCovers =
      inSet.subarray(o, o + l).every((b) => b === 1) &&
      set.some((s) => s.offsetBytes <= o && o + l <= s.offsetBytes + s.lengthBytes);
    assert.equal(covers(set, o, l), modelCovers, `covers, seed ${SEED} round ${round}`);
    const chunk = 1 + rng.int(40);
    const pieces = splitAligned(coalesce(a), chunk);
    assert.equal(totalBytes(pieces), totalBytes(coalesce(a)));
    for (const p of pieces) {
      assert.ok(p.lengthBytes <= chunk && p.lengthBytes > 0);
      assert.equal(
        Math.floor(p.offsetBytes / chunk),
        Math.floor((p.offsetBytes + p.lengthBytes - 1) / chunk),
        'within one aligned chunk',
      );
    }
  }
});

test('coarsen bounds the number of extents and still covers every input byte', () => {
  const many = Array.from({ length: 1000 }, (_, i) => r(i * 8192, 4096));
  const out = coarsen(many, 10);
  assert.ok(out.length <= 10);
  for (const m of many) assert.ok(covers(out, m.offsetBytes, m.lengthBytes));
});

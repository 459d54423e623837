import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSecondsiteError } from '../../domain/errors.js';
import { Rng } from '../../domain/random.js';
import { compressChunk, decompressChunk, isAllZero } from './chunk-compression.js';

test('compressible chunks go as lz4 and roundtrip; random ones go raw', () => {
  const text = Buffer.from('replication '.repeat(10_000));
  const c = compressChunk(text);
  assert.equal(c.compression, 'lz4');
  assert.ok(c.body.length < text.length / 2);
  assert.ok(decompressChunk(c.body, text.length).equals(text));
  const random = new Rng(1).fill(Buffer.alloc(65536)) as Buffer;
  assert.equal(compressChunk(random).compression, 'none');
});

test('a lying size prefix or corrupt block is refused', () => {
  const text = Buffer.from('abc'.repeat(5000));
  const c = compressChunk(text);
  assert.throws(
    () => decompressChunk(c.body, text.length + 1),
    (e) => isSecondsiteError(e, 'SECONDSITE_ERR_BAD_FRAME'),
  );
  const broken = Buffer.from(c.body.subarray(0, 8));
  assert.throws(
    () => decompressChunk(broken, text.length),
    (e) => isSecondsiteError(e, 'SECONDSITE_ERR_BAD_FRAME'),
  );
});

test('isAllZero', () => {
  const b = Buffer.alloc(65539);
  assert.ok(isAllZero(b));
  b[65538] = 1;
  assert.ok(!isAllZero(b));
  b[65538] = 0;
  b[8] = 1;
  assert.ok(!isAllZero(b));
});

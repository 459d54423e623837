import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSecondsiteError } from '../../domain/errors.js';
import { Rng } from '../../domain/random.js';
import { chunkChecksum, chunkChecksumAsync } from '../../protocol/replication/cycle-digest.js';
import { compressChunk, compressChunkAsync, decompressChunk, isAllZero } from './chunk-compression.js';

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

test('the threadpool variants decide and hash exactly like the synchronous ones', async () => {
  const rng = new Rng(7);
  const text = Buffer.from('secondsite '.repeat(20_000));
  const random = rng.fill(Buffer.alloc(256 * 1024)) as Buffer;
  const mixed = Buffer.concat([random.subarray(0, 65536), text.subarray(0, 3 * 65536)]);
  for (const data of [text, random, mixed, Buffer.from('x')]) {
    const a = await compressChunkAsync(data);
    const b = compressChunk(data);
    assert.equal(a.compression, b.compression);
    const back = a.compression === 'lz4' ? decompressChunk(a.body, data.length) : a.body;
    assert.ok(back.equals(data));
    assert.ok((await chunkChecksumAsync(data)).equals(chunkChecksum(data)));
  }
});

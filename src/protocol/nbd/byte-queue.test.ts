import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, seedFrom } from '../../domain/random.js';
import { ByteQueue } from './byte-queue.js';

test('take and peek return the stream in order whatever the chunking (seeded)', () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 77);
  const rng = new Rng(seed);
  const stream = rng.fill(Buffer.alloc(64 * 1024)) as Buffer;
  const q = new ByteQueue();
  for (let pos = 0; pos < stream.length;) {
    const n = Math.min(stream.length - pos, 1 + rng.int(700));
    q.push(stream.subarray(pos, pos + n));
    pos += n;
  }
  let read = 0;
  while (q.bytes > 0) {
    if (q.bytes >= 4) assert.equal(q.peekU32(), stream.readUInt32BE(read), `seed ${seed} at ${read}`);
    const n = Math.min(q.bytes, rng.int(1500));
    assert.deepEqual(q.take(n), stream.subarray(read, read + n), `seed ${seed} at ${read}`);
    read += n;
  }
  assert.equal(read, stream.length);
});

test('drain returns everything and empties the queue', () => {
  const q = new ByteQueue();
  q.push(Buffer.from('ab'));
  q.push(Buffer.from('cd'));
  assert.equal(q.take(1).toString(), 'a');
  assert.equal(q.drain().toString(), 'bcd');
  assert.equal(q.bytes, 0);
});

test('takeInto moves bytes across chunk borders into a buffer at an offset (seeded)', () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 78);
  const rng = new Rng(seed);
  const stream = rng.fill(Buffer.alloc(20_000)) as Buffer;
  const q = new ByteQueue();
  const out = Buffer.alloc(stream.length + 7);
  let pushed = 0;
  let moved = 0;
  while (moved < stream.length) {
    if (pushed < stream.length) {
      const n = Math.min(stream.length - pushed, 1 + rng.int(3000));
      q.push(stream.subarray(pushed, pushed + n));
      pushed += n;
    }
    const want = rng.int(2500);
    const before = q.bytes;
    const k = q.takeInto(out, 7 + moved, want);
    assert.equal(k, Math.min(want, before), `seed ${seed}`);
    assert.equal(q.bytes, before - k, `seed ${seed}`);
    moved += k;
  }
  assert.deepEqual(out.subarray(7), stream, `seed ${seed}`);
  assert.equal(q.firstChunkBytes, 0);
});

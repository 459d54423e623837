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

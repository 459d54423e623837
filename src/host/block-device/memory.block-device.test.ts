import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, seedFrom } from '../../domain/random.js';
import { isSecondsiteError } from '../../domain/errors.js';
import { MemoryBlockDevice } from './memory.block-device.js';

const KB64 = 64 * 1024;

test('unwritten space reads as zeros and is one hole extent', async () => {
  const d = new MemoryBlockDevice({ sizeBytes: 1024 * 1024 });
  assert.deepEqual(await d.read(100, 10), Buffer.alloc(10));
  assert.deepEqual(await d.extents(0, 1024 * 1024), [
    { offsetBytes: 0, lengthBytes: 1024 * 1024, hole: true, zero: true },
  ]);
});

test('writes across page boundaries read back and show as data extents', async () => {
  const d = new MemoryBlockDevice({ sizeBytes: 4 * KB64 });
  const data = Buffer.alloc(KB64 + 10, 0xab);
  await d.write(KB64 - 5, data, { fua: false });
  assert.deepEqual(await d.read(KB64 - 5, data.length), data);
  assert.deepEqual(await d.read(KB64 - 6, 1), Buffer.alloc(1));
  assert.deepEqual(await d.extents(0, 4 * KB64), [
    { offsetBytes: 0, lengthBytes: 3 * KB64, hole: false, zero: false },
    { offsetBytes: 3 * KB64, lengthBytes: KB64, hole: true, zero: true },
  ]);
});

test('trim and write-zeroes punch whole pages and zero partial ones; noHole keeps allocation', async () => {
  const d = new MemoryBlockDevice({ sizeBytes: 4 * KB64 });
  await d.write(0, Buffer.alloc(4 * KB64, 1), { fua: false });
  await d.trim(10, 2 * KB64, { fua: false });
  assert.equal(d.allocatedBytes, 3 * KB64);
  assert.deepEqual(await d.read(0, 11), Buffer.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]));
  await d.writeZeroes(3 * KB64, KB64, { fua: false, noHole: true });
  assert.equal(d.allocatedBytes, 3 * KB64);
  assert.deepEqual(await d.read(3 * KB64, KB64), Buffer.alloc(KB64));
  await d.writeZeroes(3 * KB64, KB64, { fua: false, noHole: false });
  assert.equal(d.allocatedBytes, 2 * KB64);
});

test('out-of-range and read-only use are refused with registered errors', async () => {
  const d = new MemoryBlockDevice({ sizeBytes: 100 });
  await assert.rejects(
    async () => d.read(90, 20),
    (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT'),
  );
  const ro = new MemoryBlockDevice({ sizeBytes: 100, readOnly: true });
  await assert.rejects(
    async () => ro.write(0, Buffer.alloc(1), { fua: false }),
    (e) => isSecondsiteError(e, 'SECONDSITE_ERR_FORBIDDEN'),
  );
});

test('random operations match a flat reference buffer (seeded)', async () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 1234);
  const rng = new Rng(seed);
  const size = 8 * KB64 + 123;
  const d = new MemoryBlockDevice({ sizeBytes: size });
  const ref = Buffer.alloc(size);
  for (let i = 0; i < 500; i++) {
    const off = rng.int(size);
    const len = rng.int(Math.min(size - off, 3 * KB64) + 1);
    const op = rng.int(3);
    if (op === 0) {
      const data = Buffer.from(rng.fill(new Uint8Array(len)));
      await d.write(off, data, { fua: false });
      data.copy(ref, off);
    } else if (op === 1) {
      await d.trim(off, len, { fua: false });
      ref.fill(0, off, off + len);
    } else {
      await d.writeZeroes(off, len, { fua: false, noHole: rng.chance(0.5) });
      ref.fill(0, off, off + len);
    }
  }
  assert.ok((await d.read(0, size)).equals(ref), `contents differ (seed ${seed})`);
  const ext = await d.extents(0, size);
  assert.equal(
    ext.reduce((n, e) => n + e.lengthBytes, 0),
    size,
    `extents do not cover the disk (seed ${seed})`,
  );
});

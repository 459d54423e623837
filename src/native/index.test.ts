import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { errnoCode, preadBatch, punchHole, pwriteBatch, seekData, seekHole, zeroRange } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'secondsite-native-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const MiB = 1024 * 1024;

test('seekData / seekHole walk a sparse file; ENXIO maps to -1 / size', () => {
  const fd = openSync(join(dir, 'seek.raw'), 'w+');
  try {
    ftruncateSync(fd, 8 * MiB);
    writeSync(fd, Buffer.alloc(MiB, 1), 0, MiB, 2 * MiB);
    assert.equal(seekData(fd, 0), 2 * MiB);
    assert.equal(seekHole(fd, 2 * MiB), 3 * MiB);
    assert.equal(seekData(fd, 3 * MiB), -1, 'no data after the last extent');
    assert.equal(seekHole(fd, 8 * MiB), 8 * MiB, 'at EOF the hole offset is the size');
    assert.equal(seekHole(fd, 100 * MiB), 8 * MiB);
  } finally {
    closeSync(fd);
  }
});

test('punchHole and zeroRange make ranges read as zeros; errors carry the errno name', async () => {
  const fd = openSync(join(dir, 'punch.raw'), 'w+');
  try {
    writeSync(fd, Buffer.alloc(4 * MiB, 0xcc), 0, 4 * MiB, 0);
    await punchHole(fd, MiB, MiB);
    await zeroRange(fd, 3 * MiB, 4096);
    const buf = Buffer.alloc(4 * MiB);
    readSync(fd, buf, 0, buf.length, 0);
    assert.ok(buf.subarray(MiB, 2 * MiB).every((b) => b === 0));
    assert.ok(buf.subarray(3 * MiB, 3 * MiB + 4096).every((b) => b === 0));
    assert.ok(buf.subarray(0, MiB).every((b) => b === 0xcc));
    assert.ok(buf.subarray(3 * MiB + 4096).every((b) => b === 0xcc));
    assert.equal(seekHole(fd, 0), MiB);
  } finally {
    closeSync(fd);
  }
  await assert.rejects(punchHole(987654, 0, 4096), (e) => errnoCode(e) === 'EBADF');
  assert.throws(
    () => seekData(987654, 0),
    (e) => errnoCode(e) === 'EBADF',
  );
  assert.throws(() => seekData(-1, 0), TypeError);
  assert.throws(() => seekData(0, 1.5), TypeError);
});

test('pwriteBatch writes each buffer at its offset in array order; each write reports its own errno', async () => {
  const fd = openSync(join(dir, 'batch.raw'), 'w+');
  try {
    ftruncateSync(fd, 4 * MiB);
    const results = await pwriteBatch(
      fd,
      [Buffer.alloc(4096, 1), Buffer.alloc(8192, 2), Buffer.alloc(4096, 3), Buffer.alloc(512, 4)],
      [0, 3 * MiB, 4096, 2048],
    );
    assert.deepEqual(results, [0, 0, 0, 0]);
    const buf = Buffer.alloc(4 * MiB);
    readSync(fd, buf, 0, buf.length, 0);
    assert.ok(buf.subarray(0, 2048).every((b) => b === 1));
    assert.ok(
      buf.subarray(2048, 2560).every((b) => b === 4),
      'a later write over an earlier one wins',
    );
    assert.ok(buf.subarray(2560, 4096).every((b) => b === 1));
    assert.ok(buf.subarray(4096, 8192).every((b) => b === 3));
    assert.ok(buf.subarray(3 * MiB, 3 * MiB + 8192).every((b) => b === 2));
    assert.ok(buf.subarray(8192, 3 * MiB).every((b) => b === 0));

    // A write past the file system's largest file size fails alone; the others land.
    const mixed = await pwriteBatch(
      fd,
      [Buffer.alloc(4096, 5), Buffer.alloc(4096, 6), Buffer.alloc(4096, 7)],
      [MiB, 2 ** 52, MiB + 4096],
    );
    assert.equal(mixed[0], 0);
    assert.ok((mixed[1] as number) < 0, `a negative errno for the write at 4 PiB, got ${mixed[1]}`);
    assert.equal(mixed[2], 0);
    readSync(fd, buf, 0, 8192, MiB);
    assert.ok(buf.subarray(0, 4096).every((b) => b === 5));
    assert.ok(buf.subarray(4096, 8192).every((b) => b === 7));
  } finally {
    closeSync(fd);
  }
  assert.deepEqual(await pwriteBatch(987654, [Buffer.alloc(1)], [0]), [-9], 'EBADF is -9 on Linux');
  assert.throws(() => pwriteBatch(0, [], []), TypeError);
  assert.throws(() => pwriteBatch(0, [Buffer.alloc(1)], [0, 1]), TypeError);
  assert.throws(() => pwriteBatch(0, ['x' as unknown as Buffer], [0]), TypeError);
  assert.throws(() => pwriteBatch(0, [Buffer.alloc(1)], [-1]), TypeError);
});

test('preadBatch fills each buffer from its offset; short at end of file; each read reports its own errno', async () => {
  const path = join(dir, 'pread.raw');
  const fd = openSync(path, 'w+');
  try {
    ftruncateSync(fd, 2 * MiB);
    writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 0);
    writeSync(fd, Buffer.alloc(4096, 2), 0, 4096, MiB);
    const bufs = [
      Buffer.alloc(4096, 0xff),
      Buffer.alloc(4096, 0xff),
      Buffer.alloc(8192, 0xff),
      Buffer.alloc(16),
    ];
    const results = await preadBatch(fd, bufs, [MiB, 0, 2 * MiB - 4096, 2 ** 52]);
    assert.deepEqual(results, [4096, 4096, 4096, 0], 'a read at the end is short, past it empty');
    assert.ok(bufs[0]?.every((b) => b === 2));
    assert.ok(bufs[1]?.every((b) => b === 1));
    assert.ok(
      bufs[2]?.subarray(0, 4096).every((b) => b === 0),
      'a hole reads as zeros',
    );
  } finally {
    closeSync(fd);
  }
  const wfd = openSync(path, 'w');
  try {
    const r = await preadBatch(wfd, [Buffer.alloc(16)], [0]);
    assert.equal(r[0], -9, 'EBADF: the fd is open for writing only');
  } finally {
    closeSync(wfd);
  }
  assert.throws(() => preadBatch(0, [], []), TypeError);
});

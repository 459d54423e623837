import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { errnoCode, punchHole, seekData, seekHole, zeroRange } from './index.js';

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

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareImages, openImage } from './disk-image.js';

test('compareImages finds the first differing byte across sources; short images read as zeros', async () => {
  const a = Buffer.alloc(3 * 1024 * 1024, 1);
  const b = Buffer.from(a);
  const same = await compareImages({ diskId: 0, buffer: a }, { diskId: 0, buffer: b }, a.length, 1024 * 1024);
  assert.equal(same.equal, true);
  assert.equal(same.sha256A, same.sha256B);
  b[2 * 1024 * 1024 + 17] = 0;
  const dir = await mkdtemp(join(tmpdir(), 'secondsite-image-'));
  try {
    const path = join(dir, 'b.img');
    await writeFile(path, b);
    const diff = await compareImages({ diskId: 0, buffer: a }, { diskId: 0, path }, a.length, 1024 * 1024);
    assert.equal(diff.equal, false);
    assert.equal(diff.firstDifferenceBytes, 2 * 1024 * 1024 + 17);
    assert.notEqual(diff.sha256A, diff.sha256B);
    const reader = await openImage({ diskId: 0, path });
    const tail = await reader.read(a.length - 2, 4); // 2 bytes past the end of the file
    await reader.close();
    assert.deepEqual([...tail], [1, 1, 0, 0]);
    const fn = await openImage({
      diskId: 0,
      read: (o, l) => Promise.resolve(a.subarray(o, o + Math.min(l, 2))),
    });
    assert.deepEqual([...(await fn.read(0, 4))], [1, 1, 0, 0]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

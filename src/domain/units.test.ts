import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GiB, KiB, MiB, formatBytes, parseBytes } from './units.js';

test('parseBytes accepts plain and suffixed sizes and rejects junk', () => {
  assert.equal(parseBytes('512'), 512);
  assert.equal(parseBytes('4K'), 4 * KiB);
  assert.equal(parseBytes('64KiB'), 64 * KiB);
  assert.equal(parseBytes('2G'), 2 * GiB);
  assert.equal(parseBytes('1.5MiB'), 1.5 * MiB);
  assert.equal(parseBytes('ten'), null);
  assert.equal(parseBytes('-1'), null);
});

test('formatBytes picks a readable unit', () => {
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(3 * MiB), '3.0 MiB');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_WINDOW_BYTES, windowBytesOf } from './replication-sender.js';

const MiB = 1024 * 1024;

test('the send window is windowChunks x chunkBytes, capped at 64 MiB, never less than one chunk', () => {
  assert.equal(windowBytesOf({ windowChunks: 64, chunkBytes: MiB }), 64 * MiB);
  assert.equal(windowBytesOf({ windowChunks: 4, chunkBytes: 256 * 1024 }), MiB);
  assert.equal(windowBytesOf({ windowChunks: 64, chunkBytes: 16 * MiB }), MAX_WINDOW_BYTES);
  assert.equal(windowBytesOf({ windowChunks: 1024, chunkBytes: 16 * MiB }), 64 * MiB);
  assert.equal(windowBytesOf({ windowChunks: 2, chunkBytes: 16 * MiB }), 32 * MiB);
  assert.equal(MAX_WINDOW_BYTES, 64 * MiB);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DirtyBitmap } from './dirty-bitmap.js';
import { decodeTrackingState, encodeTrackingState } from './tracking-state.js';

test('encode/decode round trip; any flipped byte is detected', () => {
  const blocks = 100;
  const shipping = new DirtyBitmap(blocks);
  shipping.setRange(3, 9);
  const active = new DirtyBitmap(blocks);
  active.set(99);
  const buf = encodeTrackingState({
    open: true,
    resyncPending: false,
    generation: 41,
    sizeBytes: 100 * 65536 - 512,
    trackingBlockBytes: 65536,
    shipping,
    active,
  });
  const back = decodeTrackingState(buf);
  if (typeof back === 'string') assert.fail(back);
  assert.equal(back.open, true);
  assert.equal(back.resyncPending, false);
  assert.equal(back.generation, 41);
  assert.equal(back.sizeBytes, 100 * 65536 - 512);
  assert.deepEqual(back.shipping.runs(), [[3, 9]]);
  assert.deepEqual(back.active.runs(), [[99, 100]]);
  for (let i = 0; i < buf.length; i++) {
    const bad = Buffer.from(buf);
    bad[i] = (bad[i] ?? 0) ^ 0x10;
    assert.equal(typeof decodeTrackingState(bad), 'string', `flip at byte ${i} went unnoticed`);
  }
  assert.equal(typeof decodeTrackingState(buf.subarray(0, buf.length - 1)), 'string');
  assert.equal(typeof decodeTrackingState(Buffer.alloc(0)), 'string');
});

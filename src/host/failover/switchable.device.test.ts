import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBlockDevice } from '../block-device/memory.block-device.js';
import { SwitchableDevice } from './switchable.device.js';

test('switchTo holds new calls, drains those in flight, and sends the held ones to the new device', async () => {
  const a = new MemoryBlockDevice({ sizeBytes: 64 * 1024 });
  const b = new MemoryBlockDevice({ sizeBytes: 64 * 1024 });
  const dev = new SwitchableDevice(a);
  await dev.write(0, Buffer.alloc(4096, 1), { fua: false });
  const order: string[] = [];
  let copied = false;
  const switching = dev.switchTo(async (old) => {
    order.push('switch');
    // the new device starts as a copy of the old one (as a promoted disk does)
    await b.write(0, await old.read(0, 64 * 1024), { fua: false });
    copied = true;
    return b;
  });
  const held = dev.write(4096, Buffer.alloc(4096, 2), { fua: false }).then(() => order.push('held write'));
  await switching;
  await held;
  assert.deepEqual(order, ['switch', 'held write']);
  assert.ok(copied);
  assert.equal(dev.device, b);
  assert.ok((await b.read(0, 4096)).every((x) => x === 1));
  assert.ok(
    (await b.read(4096, 4096)).every((x) => x === 2),
    'the held write went to the new device',
  );
  assert.ok(
    (await a.read(4096, 4096)).every((x) => x === 0),
    'and not to the old one',
  );
});

test('a failed switch keeps the old device; a size mismatch is refused', async () => {
  const a = new MemoryBlockDevice({ sizeBytes: 8192 });
  const dev = new SwitchableDevice(a);
  await assert.rejects(
    dev.switchTo(() => Promise.reject(new Error('boom'))),
    /boom/,
  );
  await assert.rejects(
    dev.switchTo(() => Promise.resolve(new MemoryBlockDevice({ sizeBytes: 4096 }))),
    /cannot switch/,
  );
  assert.equal(dev.device, a);
  await dev.write(0, Buffer.alloc(10, 7), { fua: false });
  assert.equal((await a.read(0, 1))[0], 7);
});

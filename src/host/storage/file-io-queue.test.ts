import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { KiB, MiB } from '../../domain/units.js';
import { FileIoQueue, MAX_BATCHES_IN_FLIGHT } from './file-io-queue.js';
import { NodeStorage } from './node-storage.js';
import type { StorageFile } from './storage.js';

let dir: string;
const storage = new NodeStorage();
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'secondsite-ioq-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A real file whose write calls are recorded and can be held until `open()`. */
async function heldFile(name: string): Promise<{
  path: string;
  file: StorageFile;
  calls: string[];
  open: () => void;
}> {
  const path = join(dir, name);
  const base = await storage.open(path, 'create');
  await base.truncate(16 * MiB);
  const calls: string[] = [];
  let release = (): void => {};
  const gate = new Promise<void>((r) => (release = r));
  const file = Object.assign(Object.create(base) as StorageFile, {
    write: async (buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number) => {
      calls.push(`write ${positionBytes}`);
      await gate;
      await base.write(buf, bufOffset, lengthBytes, positionBytes);
    },
    writev: async (buffers: readonly Buffer[], positionBytes: number) => {
      calls.push(`writev ${positionBytes} x${buffers.length}`);
      await (base.writev as NonNullable<StorageFile['writev']>).call(base, buffers, positionBytes);
    },
  });
  return { path, file, calls, open: release };
}

test('a log of appends (header, payload, header, ...) queued behind the writes in flight leaves as one pwritev', async () => {
  const f = await heldFile('log.raw');
  const q = new FileIoQueue(f.file);
  const first = [q.write(0, Buffer.alloc(100, 1)), q.write(MiB, Buffer.alloc(100, 2))];
  assert.equal(f.calls.length, MAX_BATCHES_IN_FLIGHT);
  assert.equal(q.writesIdle, false);
  const appends: Promise<void>[] = [];
  let at = 100;
  for (let i = 0; i < 10; i++) {
    const head = Buffer.alloc(64, 10 + i);
    const payload = Buffer.alloc(4 * KiB, 10 + i);
    appends.push(q.write(at, head), q.write(at + head.length, payload));
    at += head.length + payload.length;
  }
  f.open();
  await Promise.all([...first, ...appends]);
  assert.deepEqual(f.calls.slice(MAX_BATCHES_IN_FLIGHT), ['writev 100 x20']);
  assert.equal(q.mergedWriteCount, 20);
  assert.equal(q.writesIdle, true);
  const image = readFileSync(f.path);
  assert.ok(image.subarray(100, 164).every((b) => b === 10));
  assert.ok(image.subarray(at - 4 * KiB, at).every((b) => b === 19));
});

test('a file without writev gets one plain write per request, unqueued', async () => {
  const path = join(dir, 'plain.raw');
  const base = await storage.open(path, 'create');
  const calls: number[] = [];
  const file: StorageFile = Object.assign(Object.create(base) as StorageFile, {
    writev: undefined,
    write: async (buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number) => {
      calls.push(positionBytes);
      await base.write(buf, bufOffset, lengthBytes, positionBytes);
    },
  });
  const q = new FileIoQueue(file);
  await Promise.all([0, 1, 2, 3].map((i) => q.write(i * 512, Buffer.alloc(512, i + 1))));
  assert.deepEqual(calls, [0, 512, 1024, 1536]);
  assert.deepEqual(
    [...readFileSync(path)].filter((_, i) => i % 512 === 0),
    [1, 2, 3, 4],
  );
});

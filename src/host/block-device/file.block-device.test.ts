import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isSecondsiteError } from '../../domain/errors.js';
import { Rng, seedFrom } from '../../domain/random.js';
import { KiB, MiB } from '../../domain/units.js';
import { NodeStorage } from '../storage/node-storage.js';
import { MAX_BATCHES_IN_FLIGHT } from '../storage/file-io-queue.js';
import type { PositionedBuffer, StorageFile } from '../storage/storage.js';
import { FileBlockDevice, SYNC_WRITE_MAX_BYTES, SYNC_WRITE_SLOW_MS } from './file.block-device.js';

let dir: string;
const storage = new NodeStorage();
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'secondsite-file-bd-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function device(name: string, sizeBytes: number): Promise<FileBlockDevice> {
  const file = await storage.open(join(dir, name), 'create');
  await file.truncate(sizeBytes);
  return FileBlockDevice.open(file);
}

test('writes read back; large reads over holes return zeros; extents report holes', async () => {
  const dev = await device('a.raw', 8 * MiB);
  assert.equal(dev.sizeBytes, 8 * MiB);
  await dev.write(MiB, Buffer.alloc(64 * KiB, 0x5a), { fua: false });
  await dev.write(5 * MiB + 512, Buffer.alloc(1024, 0x77), { fua: true });
  const all = await dev.read(0, 8 * MiB);
  const expected = Buffer.alloc(8 * MiB);
  expected.fill(0x5a, MiB, MiB + 64 * KiB);
  expected.fill(0x77, 5 * MiB + 512, 5 * MiB + 1536);
  assert.ok(all.equals(expected));
  assert.ok((await dev.read(MiB - 10, 20)).equals(expected.subarray(MiB - 10, MiB + 10)));
  const ext = await dev.extents(0, 8 * MiB);
  assert.equal(ext[0]?.offsetBytes, 0);
  assert.deepEqual(ext[0], { offsetBytes: 0, lengthBytes: MiB, hole: true, zero: true });
  assert.deepEqual(ext[1], { offsetBytes: MiB, lengthBytes: 64 * KiB, hole: false, zero: false });
  const total = ext.reduce((s, e) => s + e.lengthBytes, 0);
  assert.equal(total, 8 * MiB, 'extents cover the range');
  await dev.flush();
  await dev.close();
});

test('trim and writeZeroes punch holes; noHole keeps the range allocated', async () => {
  const dev = await device('b.raw', 4 * MiB);
  await dev.write(0, Buffer.alloc(4 * MiB, 0xee), { fua: false });
  await dev.trim(0, MiB, { fua: false });
  await dev.writeZeroes(MiB, MiB, { fua: true, noHole: false });
  await dev.writeZeroes(2 * MiB, MiB, { fua: false, noHole: true });
  const data = await dev.read(0, 4 * MiB);
  assert.ok(data.subarray(0, 3 * MiB).every((b) => b === 0));
  assert.ok(data.subarray(3 * MiB).every((b) => b === 0xee));
  assert.deepEqual(await dev.extents(0, 4 * MiB), [
    { offsetBytes: 0, lengthBytes: 2 * MiB, hole: true, zero: true },
    { offsetBytes: 2 * MiB, lengthBytes: 2 * MiB, hole: false, zero: false },
  ]);
  await dev.flush();
  const map = JSON.parse(
    execFileSync('qemu-img', ['map', '--output=json', '-f', 'raw', join(dir, 'b.raw')], { encoding: 'utf8' }),
  ) as { start: number; length: number; data: boolean }[];
  assert.deepEqual(
    map.filter((e) => e.data).map((e) => [e.start, e.length]),
    [[2 * MiB, 2 * MiB]],
    'qemu-img sees the same allocation',
  );
  await dev.close();
});

test('a read-only device refuses changes', async () => {
  const file = await storage.open(join(dir, 'b.raw'), 'read');
  const dev = await FileBlockDevice.open(file, { readOnly: true });
  assert.equal(dev.readOnly, true);
  await assert.rejects(dev.write(0, Buffer.alloc(512), { fua: false }), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'),
  );
  await assert.rejects(dev.trim(0, 512, { fua: false }), (e) => isSecondsiteError(e));
  await dev.flush();
  await dev.close();
});

test('seeded random writes, trims and zeroes match an in-memory model', async () => {
  const seed = seedFrom(process.env.SECONDSITE_SEED, 20261122);
  const rng = new Rng(seed);
  const sizeBytes = 4 * MiB;
  const dev = await device('c.raw', sizeBytes);
  const model = Buffer.alloc(sizeBytes);
  for (let i = 0; i < 400; i++) {
    const offsetBytes = rng.int(sizeBytes / 512) * 512;
    const lengthBytes = Math.min(sizeBytes - offsetBytes, (1 + rng.int(256)) * 512);
    const kind = rng.int(10);
    if (kind < 7) {
      const data = Buffer.from(rng.fill(new Uint8Array(lengthBytes)));
      data.copy(model, offsetBytes);
      await dev.write(offsetBytes, data, { fua: rng.chance(0.1) });
    } else if (kind < 8) {
      model.fill(0, offsetBytes, offsetBytes + lengthBytes);
      await dev.trim(offsetBytes, lengthBytes, { fua: false });
    } else {
      model.fill(0, offsetBytes, offsetBytes + lengthBytes);
      await dev.writeZeroes(offsetBytes, lengthBytes, { fua: false, noHole: rng.chance(0.5) });
    }
    if (rng.chance(0.05)) {
      const at = rng.int(sizeBytes / 512) * 512;
      const len = Math.min(sizeBytes - at, rng.int(2 * MiB) + 1);
      assert.ok((await dev.read(at, len)).equals(model.subarray(at, at + len)), `seed ${seed}, op ${i}`);
    }
  }
  assert.ok((await dev.read(0, sizeBytes)).equals(model), `seed ${seed}: final content differs`);
  await dev.close();
});

test('concurrent flushes share datasyncs (group commit) and all complete', async () => {
  const file = await storage.open(join(dir, 'g.raw'), 'create');
  await file.truncate(MiB);
  let syncs = 0;
  const counted = Object.assign(Object.create(file) as typeof file, {
    datasync: async () => {
      syncs++;
      await file.datasync();
    },
  });
  const dev = await FileBlockDevice.open(counted);
  await dev.write(0, Buffer.alloc(4096, 1), { fua: false });
  await Promise.all(Array.from({ length: 20 }, () => dev.flush()));
  assert.ok(syncs >= 1 && syncs <= 2, `20 concurrent flushes took ${syncs} datasyncs`);
  syncs = 0;
  const first = dev.flush();
  await dev.write(4096, Buffer.alloc(4096, 2), { fua: false });
  await dev.flush(); // arrived while the first ran: must get its own datasync after it
  await first;
  assert.equal(syncs, 2);
  await dev.close();
});

/** A real file whose calls are recorded; datasync can be held open, writeNow can be made slow or fail. */
function recorded(file: StorageFile): {
  file: StorageFile;
  events: string[];
  holdSync: () => () => void;
  slowNext: (ms: number) => void;
  failNext: () => void;
} {
  const events: string[] = [];
  let gate: Promise<void> | undefined;
  let slowMs = 0;
  let fail = false;
  const wrapped = Object.assign(Object.create(file) as StorageFile, {
    writeNow: (buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): void => {
      if (fail) {
        fail = false;
        throw Object.assign(new Error('EIO: injected'), { code: 'EIO' });
      }
      const until = performance.now() + slowMs;
      slowMs = 0;
      while (performance.now() < until); // a synchronous write the kernel made wait
      (file.writeNow as NonNullable<StorageFile['writeNow']>).call(
        file,
        buf,
        bufOffset,
        lengthBytes,
        positionBytes,
      );
      events.push('writeNow');
    },
    write: async (buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number) => {
      await file.write(buf, bufOffset, lengthBytes, positionBytes);
      events.push('write');
    },
    datasync: async () => {
      events.push('datasync-start');
      if (gate) await gate;
      await file.datasync();
      events.push('datasync-end');
    },
  });
  return {
    file: wrapped,
    events,
    holdSync: () => {
      let open = (): void => {};
      gate = new Promise<void>((r) => (open = r));
      return () => {
        gate = undefined;
        open();
      };
    },
    slowNext: (ms) => (slowMs = ms),
    failNext: () => (fail = true),
  };
}

const settled = async (p: Promise<unknown>): Promise<boolean> => {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setImmediate(r));
  return done;
};

test('small writes land synchronously, large ones go through the thread pool; FUA acks only after the datasync', async () => {
  const path = join(dir, 's.raw');
  const base = await storage.open(path, 'create');
  await base.truncate(4 * MiB);
  const r = recorded(base);
  const dev = await FileBlockDevice.open(r.file, { syncWriteMaxBytes: SYNC_WRITE_MAX_BYTES });

  const small = dev.write(8 * KiB, Buffer.alloc(SYNC_WRITE_MAX_BYTES, 0x11), { fua: false });
  // On the file before the call returned: no thread-pool round trip.
  assert.ok(
    readFileSync(path)
      .subarray(8 * KiB, 8 * KiB + SYNC_WRITE_MAX_BYTES)
      .every((b) => b === 0x11),
  );
  await small;
  await dev.write(MiB, Buffer.alloc(SYNC_WRITE_MAX_BYTES + 1, 0x22), { fua: false });
  assert.deepEqual(r.events, ['writeNow', 'write']);
  r.events.length = 0;
  const byDefault = await FileBlockDevice.open(r.file); // the synchronous path is opt-in
  await byDefault.write(0, Buffer.alloc(4 * KiB, 0x44), { fua: false });
  assert.deepEqual(r.events, ['write']);

  r.events.length = 0;
  const release = r.holdSync();
  const fua = dev.write(0, Buffer.alloc(4 * KiB, 0x33), { fua: true });
  assert.equal(await settled(fua), false, 'a FUA write must not be acknowledged before its datasync ends');
  assert.deepEqual(r.events, ['writeNow', 'datasync-start']);
  release();
  await fua;
  assert.deepEqual(r.events, ['writeNow', 'datasync-start', 'datasync-end']);
  await dev.close();
});

test('a small write goes synchronously only when no other write of the device is in flight or queued', async () => {
  const base = await storage.open(join(dir, 'inflight.raw'), 'create');
  await base.truncate(4 * MiB);
  const r = recorded(base);
  let open = (): void => {};
  const held = new Promise<void>((res) => (open = res));
  const file = Object.assign(Object.create(r.file) as StorageFile, {
    write: async (buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number) => {
      await held;
      await r.file.write(buf, bufOffset, lengthBytes, positionBytes);
    },
  });
  const dev = await FileBlockDevice.open(file, { syncWriteMaxBytes: SYNC_WRITE_MAX_BYTES });
  const large = dev.write(0, Buffer.alloc(SYNC_WRITE_MAX_BYTES + 1, 1), { fua: false });
  // With a write in flight, a synchronous pwrite would wait on the event loop for the inode lock.
  const small = dev.write(MiB, Buffer.alloc(4 * KiB, 2), { fua: false });
  assert.equal(await settled(small), false, 'queued behind the write in flight, not written at once');
  open();
  await Promise.all([large, small]);
  assert.deepEqual(r.events, ['write', 'write']);
  await dev.write(2 * MiB, Buffer.alloc(4 * KiB, 3), { fua: false });
  assert.deepEqual(r.events.slice(2), ['writeNow'], 'nothing in flight: synchronous again');
  await dev.close();
});

test('a small write does not go synchronously while a trim holds the file (outside the write queue)', async () => {
  const base = await storage.open(join(dir, 'trim-inflight.raw'), 'create');
  await base.truncate(4 * MiB);
  const r = recorded(base);
  let open = (): void => {};
  const held = new Promise<void>((res) => (open = res));
  const file = Object.assign(Object.create(r.file) as StorageFile, {
    punchHole: async (positionBytes: number, lengthBytes: number) => {
      await held;
      await r.file.punchHole(positionBytes, lengthBytes);
    },
  });
  const dev = await FileBlockDevice.open(file, { syncWriteMaxBytes: SYNC_WRITE_MAX_BYTES });
  const trim = dev.trim(0, MiB, { fua: false });
  const small = dev.write(2 * MiB, Buffer.alloc(4 * KiB, 2), { fua: false });
  await small;
  assert.deepEqual(r.events, ['write'], 'through the thread pool, not writeNow');
  open();
  await trim;
  await dev.write(3 * MiB, Buffer.alloc(4 * KiB, 3), { fua: false });
  assert.deepEqual(r.events.slice(1), ['writeNow'], 'trim done: synchronous again');
  await dev.close();
});

test('a slow synchronous write sends small writes to the thread pool for the back-off period; errors reject', async () => {
  const base = await storage.open(join(dir, 't.raw'), 'create');
  await base.truncate(MiB);
  const r = recorded(base);
  const dev = await FileBlockDevice.open(r.file, { syncWriteMaxBytes: SYNC_WRITE_MAX_BYTES });
  r.slowNext(SYNC_WRITE_SLOW_MS + 2);
  await dev.write(0, Buffer.alloc(4 * KiB, 1), { fua: false });
  await dev.write(4 * KiB, Buffer.alloc(4 * KiB, 2), { fua: false });
  assert.deepEqual(r.events, ['writeNow', 'write']);
  assert.equal(dev.slowSyncWriteCount, 1);

  const fresh = await FileBlockDevice.open(r.file, { syncWriteMaxBytes: SYNC_WRITE_MAX_BYTES });
  r.failNext();
  let returned = false;
  const p = fresh.write(0, Buffer.alloc(512), { fua: false });
  returned = true;
  await assert.rejects(p, (e) => (e as { code?: string }).code === 'EIO');
  assert.ok(returned, 'a failing synchronous write rejects, it does not throw');
  await dev.close();
});

test('queued writes that continue one another leave as one pwritev; each settles with its own batch', async () => {
  const path = join(dir, 'q.raw');
  const base = await storage.open(path, 'create');
  await base.truncate(8 * MiB);
  const calls: { kind: 'write' | 'writev'; offsetBytes: number; count: number }[] = [];
  let gate: Promise<void> | undefined;
  let failNextWritev = false;
  const file = Object.assign(Object.create(base) as StorageFile, {
    write: async (buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number) => {
      calls.push({ kind: 'write', offsetBytes: positionBytes, count: 1 });
      if (gate) await gate;
      await base.write(buf, bufOffset, lengthBytes, positionBytes);
    },
    writev: async (buffers: readonly Buffer[], positionBytes: number) => {
      calls.push({ kind: 'writev', offsetBytes: positionBytes, count: buffers.length });
      if (failNextWritev) {
        failNextWritev = false;
        throw Object.assign(new Error('EIO: injected'), { code: 'EIO' });
      }
      await (base.writev as NonNullable<StorageFile['writev']>).call(base, buffers, positionBytes);
    },
  });
  const dev = await FileBlockDevice.open(file);
  const big = (fill: number): Buffer => Buffer.alloc(64 * KiB, fill);
  let open = (): void => {};
  gate = new Promise<void>((r) => (open = r));
  // Two writes take the in-flight slots and are held; the rest queue behind them.
  const held = [dev.write(0, big(1), { fua: false }), dev.write(4 * MiB, big(2), { fua: false })];
  const run = [1, 2, 3].map((i) => dev.write(MiB + i * 64 * KiB, big(10 + i), { fua: false }));
  const apart = dev.write(6 * MiB, big(20), { fua: false });
  await new Promise((r) => setImmediate(r));
  assert.equal(calls.length, MAX_BATCHES_IN_FLIGHT, 'no more than the in-flight limit starts');
  assert.equal(await settled(Promise.all(run)), false, 'queued writes are not acknowledged before they run');
  gate = undefined;
  open();
  await Promise.all([...held, ...run, apart]);
  assert.deepEqual(
    calls.slice(MAX_BATCHES_IN_FLIGHT).map((c) => [c.kind, c.offsetBytes, c.count]),
    [
      ['writev', MiB + 64 * KiB, 3],
      ['write', 6 * MiB, 1],
    ],
  );
  assert.equal(dev.mergedWriteCount, 3);
  const image = readFileSync(path);
  for (const i of [1, 2, 3]) {
    const at = MiB + i * 64 * KiB;
    assert.ok(image.subarray(at, at + 64 * KiB).every((b) => b === 10 + i));
  }

  // A failed batch fails each of its writes; the queue goes on with the next.
  calls.length = 0;
  gate = new Promise<void>((r) => (open = r));
  const held2 = [dev.write(0, big(1), { fua: false }), dev.write(4 * MiB, big(2), { fua: false })];
  failNextWritev = true;
  const failing = [0, 1].map((i) =>
    assert.rejects(
      dev.write(2 * MiB + i * 64 * KiB, big(30), { fua: false }),
      (e) => (e as { code?: string }).code === 'EIO',
    ),
  );
  const after = dev.write(7 * MiB, big(40), { fua: false });
  gate = undefined;
  open();
  await Promise.all(held2);
  await Promise.all(failing);
  await after;
  assert.ok(
    readFileSync(path)
      .subarray(7 * MiB, 7 * MiB + 64 * KiB)
      .every((b) => b === 40),
  );
  await dev.close();
});

test('queued writes that do not continue one another leave as one scattered batch; each settles with its own result', async () => {
  const path = join(dir, 'scatter.raw');
  const base = await storage.open(path, 'create');
  await base.truncate(8 * MiB);
  const calls: { kind: string; offsets: number[] }[] = [];
  let gate: Promise<void> | undefined;
  const failAt = 5 * MiB;
  const file = Object.assign(Object.create(base) as StorageFile, {
    write: async (buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number) => {
      calls.push({ kind: 'write', offsets: [positionBytes] });
      if (gate) await gate;
      await base.write(buf, bufOffset, lengthBytes, positionBytes);
    },
    writeScattered: async (writes: readonly PositionedBuffer[]) => {
      calls.push({ kind: 'scattered', offsets: writes.map((w) => w.positionBytes) });
      const results = await (base.writeScattered as NonNullable<StorageFile['writeScattered']>).call(
        base,
        writes,
      );
      return results.map((r, i) =>
        (writes[i] as PositionedBuffer).positionBytes === failAt
          ? Object.assign(new Error('EIO: injected'), { code: 'EIO' })
          : r,
      );
    },
  });
  const dev = await FileBlockDevice.open(file);
  const page = (fill: number): Buffer => Buffer.alloc(4 * KiB, fill);
  let open = (): void => {};
  gate = new Promise<void>((r) => (open = r));
  const held = [dev.write(0, page(1), { fua: false }), dev.write(MiB, page(2), { fua: false })];
  // Random 4 KiB writes queue behind the held ones; the one at 5 MiB fails, the last overwrites the first.
  const queued = [
    dev.write(3 * MiB, page(3), { fua: false }),
    dev.write(5 * MiB, page(5), { fua: false }),
    dev.write(2 * MiB, page(4), { fua: false }),
    dev.write(3 * MiB, page(6), { fua: false }),
  ];
  const outcome = queued.map((p) =>
    p.then(
      () => 'ok',
      (e: unknown) => (e as { code?: string }).code,
    ),
  );
  await new Promise((r) => setImmediate(r));
  assert.equal(calls.length, MAX_BATCHES_IN_FLIGHT);
  gate = undefined;
  open();
  await Promise.all(held);
  assert.deepEqual(await Promise.all(outcome), ['ok', 'EIO', 'ok', 'ok']);
  assert.deepEqual(calls.slice(MAX_BATCHES_IN_FLIGHT), [
    { kind: 'scattered', offsets: [3 * MiB, 5 * MiB, 2 * MiB, 3 * MiB] },
  ]);
  assert.equal(dev.scatteredWriteCount, 4);
  const image = readFileSync(path);
  assert.ok(
    image.subarray(3 * MiB, 3 * MiB + 4 * KiB).every((b) => b === 6),
    'queue order kept',
  );
  assert.ok(image.subarray(2 * MiB, 2 * MiB + 4 * KiB).every((b) => b === 4));
  await dev.close();
});

test('queued small reads leave as one scattered batch; each gets its own bytes or its own error', async () => {
  const path = join(dir, 'scatter-read.raw');
  const base = await storage.open(path, 'create');
  await base.truncate(4 * MiB);
  for (const i of [0, 1, 2, 3]) await base.write(Buffer.alloc(4 * KiB, 10 + i), 0, 4 * KiB, i * MiB);
  const calls: { kind: string; offsets: number[] }[] = [];
  let gate: Promise<void> | undefined;
  const failAt = 2 * MiB;
  const file = Object.assign(Object.create(base) as StorageFile, {
    read: async (buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number) => {
      calls.push({ kind: 'read', offsets: [positionBytes] });
      if (gate) await gate;
      return base.read(buf, bufOffset, lengthBytes, positionBytes);
    },
    readScattered: async (reads: readonly PositionedBuffer[]) => {
      calls.push({ kind: 'scattered', offsets: reads.map((r) => r.positionBytes) });
      const results = await (base.readScattered as NonNullable<StorageFile['readScattered']>).call(
        base,
        reads,
      );
      return results.map((r, i) =>
        (reads[i] as PositionedBuffer).positionBytes === failAt
          ? Object.assign(new Error('EIO: injected'), { code: 'EIO' })
          : r,
      );
    },
  });
  // The device is larger than the file: a read past the file's end reads zeros.
  const dev = await FileBlockDevice.open(file, { sizeBytes: 8 * MiB });
  let open = (): void => {};
  gate = new Promise<void>((r) => (open = r));
  const held = [dev.read(0, 4 * KiB), dev.read(MiB, 4 * KiB)];
  const queued = [3 * MiB, 2 * MiB, 6 * MiB, 0].map((at) =>
    dev.read(at, 4 * KiB).then(
      (b) => b,
      (e: unknown) => (e as { code?: string }).code,
    ),
  );
  await new Promise((r) => setImmediate(r));
  assert.equal(calls.length, MAX_BATCHES_IN_FLIGHT);
  gate = undefined;
  open();
  const [a, b] = await Promise.all(held);
  assert.ok(a?.every((x) => x === 10) && b?.every((x) => x === 11));
  const [r3, r2, r6, r0] = await Promise.all(queued);
  assert.ok(Buffer.isBuffer(r3) && r3.every((x) => x === 13));
  assert.equal(r2, 'EIO');
  assert.ok(Buffer.isBuffer(r6) && r6.length === 4 * KiB && r6.every((x) => x === 0), 'zeros past the end');
  assert.ok(Buffer.isBuffer(r0) && r0.every((x) => x === 10));
  assert.deepEqual(calls.slice(MAX_BATCHES_IN_FLIGHT), [
    { kind: 'scattered', offsets: [3 * MiB, 2 * MiB, 6 * MiB, 0] },
  ]);
  assert.equal(dev.scatteredReadCount, 4);
  await dev.close();
});

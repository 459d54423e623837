// Our NBD client against our server and against nbdkit: pipelining with replies out of order, every
// command, block status, errors per request, and failure when the server goes away mid-flight.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NbdClient } from '../../src/guest/nbd-client.js';
import { NbdServer } from '../../src/host/nbd/nbd-server.js';
import { MemoryBlockDevice } from '../../src/host/block-device/memory.block-device.js';
import type { BlockDevice } from '../../src/host/block-device/block-device.js';
import { isSecondsiteError } from '../../src/domain/errors.js';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { NbdErrno } from '../../src/protocol/nbd/nbd-constants.js';
import { MiB, sleep, startNbdkitMemory, startServer, tempDir, type TestServer } from './nbd-test-kit.js';

const seed = seedFrom(process.env['SECONDSITE_SEED'], 7);
let tmp: { dir: string; cleanup: () => Promise<void> };
let srv: TestServer;

before(async () => {
  tmp = await tempDir();
  srv = await startServer(tmp.dir, { disk: 32 * MiB, ro: MiB }, {}, ['ro']);
});
after(async () => {
  await srv.close();
  await tmp.cleanup();
});

/** A memory device whose calls finish after a random delay, so replies leave out of order. */
function jittery(inner: BlockDevice, rng: Rng): BlockDevice {
  const later = async <T>(f: () => Promise<T>): Promise<T> => {
    await sleep(rng.int(4));
    return f();
  };
  return {
    sizeBytes: inner.sizeBytes,
    readOnly: inner.readOnly,
    read: (o, n) => later(() => inner.read(o, n)),
    write: (o, d, f) => later(() => inner.write(o, d, f)),
    flush: () => later(() => inner.flush()),
    trim: (o, n, f) => later(() => inner.trim(o, n, f)),
    writeZeroes: (o, n, f) => later(() => inner.writeZeroes(o, n, f)),
    extents: (o, n) => later(() => inner.extents(o, n)),
    close: () => inner.close(),
  };
}

test('pipelined requests are matched to out-of-order replies', async () => {
  const { dir, cleanup } = await tempDir();
  const server = new NbdServer();
  const rng = new Rng(seed);
  server.addExport('j', jittery(new MemoryBlockDevice({ sizeBytes: 8 * MiB }), rng));
  await server.listenUnix(`${dir}/j.sock`);
  try {
    const c = await NbdClient.connect({ socketPath: `${dir}/j.sock`, exportName: 'j' });
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        c.write(i * 4096, Buffer.alloc(4096, i & 0xff), { fua: i % 7 === 0 }).then(() => order.push(i)),
      ),
    );
    const inversions = order.filter((v, i) => i > 0 && v < (order[i - 1] as number)).length;
    assert.ok(inversions > 0, `replies arrived in order; the test did not exercise matching (seed ${seed})`);
    const reads = await Promise.all(Array.from({ length: 200 }, (_, i) => c.read(i * 4096, 4096)));
    reads.forEach((b, i) =>
      assert.ok(
        b.every((x) => x === (i & 0xff)),
        `block ${i} wrong (seed ${seed})`,
      ),
    );
    assert.equal(c.inFlight, 0);
    await c.close();
  } finally {
    await server.close();
    await cleanup();
  }
});

test('every command against our server, with block status that follows the data', async () => {
  const c = await NbdClient.connect({ socketPath: srv.socketPath, exportName: 'disk' });
  assert.equal(c.sizeBytes, 32 * MiB);
  assert.deepEqual(c.blockSizes, { minBytes: 1, preferredBytes: 4096, maxBytes: 32 * MiB });
  assert.ok(c.canMultiConn && c.canBlockStatus && c.structuredReplies && !c.readOnly);
  const big = Buffer.alloc(4 * MiB, 0x3c);
  await c.write(MiB, big, { fua: true });
  assert.ok((await c.read(MiB, 4 * MiB, { df: true })).equals(big));
  await c.flush();
  assert.deepEqual(await c.blockStatus(0, 8 * MiB), [
    { lengthBytes: MiB, status: 3 },
    { lengthBytes: 4 * MiB, status: 0 },
    { lengthBytes: 3 * MiB, status: 3 },
  ]);
  assert.deepEqual(await c.blockStatus(0, 8 * MiB, { reqOne: true }), [{ lengthBytes: MiB, status: 3 }]);
  await c.writeZeroes(MiB, MiB, { noHole: true });
  await c.trim(2 * MiB, MiB, { fua: true });
  const st = await c.blockStatus(MiB, 3 * MiB);
  assert.deepEqual(st, [
    { lengthBytes: MiB, status: 0 },
    { lengthBytes: MiB, status: 3 },
    { lengthBytes: MiB, status: 0 },
  ]);
  assert.ok((await c.read(MiB, 2 * MiB)).every((b) => b === 0));
  assert.ok((await c.read(3 * MiB, MiB)).every((b) => b === 0x3c));
  await assert.rejects(c.write(32 * MiB - 1, Buffer.alloc(2)), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_NO_SPACE'),
  );
  await assert.rejects(c.read(32 * MiB, 1), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT'));
  assert.equal((await c.read(0, 1)).length, 1); // the connection survived the errors
  await c.close();
});

test('read-only export: EPERM; unknown export: NOT_FOUND', async () => {
  const c = await NbdClient.connect({ socketPath: srv.socketPath, exportName: 'ro' });
  assert.ok(c.readOnly);
  await assert.rejects(
    c.write(0, Buffer.alloc(1)),
    (e: { details?: { errno?: number } }) => e.details?.errno === NbdErrno.EPERM,
  );
  await assert.rejects(c.trim(0, 1), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_FORBIDDEN'));
  await c.close();
  await assert.rejects(NbdClient.connect({ socketPath: srv.socketPath, exportName: 'nope' }), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_NOT_FOUND'),
  );
});

test('pending requests fail (no hang) when the server goes away', async () => {
  const { dir, cleanup } = await tempDir();
  const server = new NbdServer();
  const stuck: BlockDevice = {
    sizeBytes: MiB,
    readOnly: false,
    read: () => new Promise(() => undefined),
    write: () => Promise.resolve(),
    flush: () => Promise.resolve(),
    trim: () => Promise.resolve(),
    writeZeroes: () => Promise.resolve(),
    extents: () => Promise.resolve([]),
    close: () => Promise.resolve(),
  };
  server.addExport('s', stuck);
  await server.listenUnix(`${dir}/s.sock`);
  const c = await NbdClient.connect({ socketPath: `${dir}/s.sock`, exportName: 's' });
  const pending = c.read(0, 512);
  await sleep(20);
  void server.close(); // never settles: the stuck read stays in flight; the socket is destroyed anyway
  await assert.rejects(pending, (e) => isSecondsiteError(e, 'SECONDSITE_ERR_CONNECTION_LOST'));
  await assert.rejects(c.read(0, 1), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_CONNECTION_LOST'));
  await cleanup();
});

test('our client against nbdkit memory (hole chunks, block status, simple replies)', async () => {
  const { dir, cleanup } = await tempDir();
  const kit = await startNbdkitMemory(dir, 16 * MiB);
  try {
    const c = await NbdClient.connect({ socketPath: kit.socketPath });
    assert.equal(c.sizeBytes, 16 * MiB);
    await c.write(MiB + 100, Buffer.alloc(5000, 9));
    const r = await c.read(MiB - 4096, 3 * 4096); // spans a hole and data
    assert.ok(r.subarray(0, 4196).every((b) => b === 0));
    assert.ok(r.subarray(4196, 9196).every((b) => b === 9));
    const st = await c.blockStatus(0, 4 * MiB);
    assert.equal(st.reduce((n, d) => n + d.lengthBytes, 0) <= 4 * MiB, true);
    assert.equal((st[0]?.status ?? 0) & 1, 1);
    await c.close();
    const simple = await NbdClient.connect({ socketPath: kit.socketPath, structuredReplies: false });
    assert.ok((await simple.read(MiB + 100, 5000)).every((b) => b === 9));
    await simple.close();
  } finally {
    await kit.stop();
    await cleanup();
  }
});

test('disconnectExport ends its clients, waits for their device calls, and leaves other exports alone', async () => {
  const { dir, cleanup } = await tempDir();
  const s = await startServer(dir, { a: MiB, b: MiB });
  try {
    const a1 = await NbdClient.connect({ socketPath: s.socketPath, exportName: 'a' });
    const a2 = await NbdClient.connect({ socketPath: s.socketPath, exportName: 'a' });
    const b = await NbdClient.connect({ socketPath: s.socketPath, exportName: 'b' });
    await a1.write(0, Buffer.alloc(512, 1));
    assert.equal(await s.server.disconnectExport('a'), 2);
    await assert.rejects(a1.read(0, 512), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_CONNECTION_LOST'));
    await assert.rejects(a2.read(0, 512), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_CONNECTION_LOST'));
    await assert.rejects(NbdClient.connect({ socketPath: s.socketPath, exportName: 'a' }), (e) =>
      isSecondsiteError(e, 'SECONDSITE_ERR_NOT_FOUND'),
    );
    assert.equal((await b.read(0, 512)).length, 512);
    await b.close();
  } finally {
    await s.close();
    await cleanup();
  }
});

test('a burst of pipelined requests never exceeds the in-flight limit at the device', async () => {
  const { dir, cleanup } = await tempDir();
  const server = new NbdServer({ maxInFlightRequests: 8 });
  const inner = new MemoryBlockDevice({ sizeBytes: 64 * MiB });
  let now = 0;
  let peak = 0;
  const counted: BlockDevice = {
    ...jittery(inner, new Rng(seed)),
    read: async (o, n) => {
      peak = Math.max(peak, ++now);
      await sleep(1);
      now--;
      return inner.read(o, n);
    },
  };
  server.addExport('c', counted);
  await server.listenUnix(`${dir}/c.sock`);
  try {
    const c = await NbdClient.connect({ socketPath: `${dir}/c.sock`, exportName: 'c' });
    // All 300 headers leave in one corked write, so the server sees them in very few socket chunks.
    const reads = await Promise.all(Array.from({ length: 300 }, (_, i) => c.read((i % 64) * MiB, 64 * 1024)));
    assert.equal(reads.length, 300);
    assert.ok(peak <= 8, `device saw ${peak} concurrent reads with a limit of 8`);
    assert.ok(peak > 1, 'requests were not pipelined at all');
    await c.close();
  } finally {
    await server.close();
    await cleanup();
  }
});

test('close() lets in-flight requests finish, refuses new ones, then disconnects cleanly', async () => {
  const c = await NbdClient.connect({ socketPath: srv.socketPath, exportName: 'disk' });
  const writes = Array.from({ length: 50 }, (_, i) => c.write(i * 65536, Buffer.alloc(65536, 0x77)));
  const closing = c.close();
  await assert.rejects(c.read(0, 1), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'));
  await Promise.all(writes);
  await closing;
  assert.ok((await srv.devices.get('disk')?.read(49 * 65536, 65536))?.every((b) => b === 0x77));
});

// The server's write path under the throughput rules of docs/design/nbd-server.md section 5: payloads
// that span socket chunks are assembled in pooled buffers, which must never be reused while a device
// call still holds them, and must all come back (after completion, a failed request, a disconnect).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NbdClient } from '../../src/guest/nbd-client.js';
import { Rng, seedFrom } from '../../src/domain/random.js';
import type { BlockDevice, WriteFlags } from '../../src/host/block-device/block-device.js';
import { MemoryBlockDevice } from '../../src/host/block-device/memory.block-device.js';
import { PassThroughFilter } from '../../src/host/block-device/pass-through.filter.js';
import { NbdServer } from '../../src/host/nbd/nbd-server.js';
import { sharedPayloadPool } from '../../src/host/nbd/payload-pool.js';
import { NBD_REQUEST_MAGIC, NbdCmd, NbdErrno, NbdOpt, NbdRep } from '../../src/protocol/nbd/nbd-constants.js';
import { encodeGoPayload } from '../../src/protocol/nbd/nbd-handshake.codec.js';
import { MiB, RawConn, sleep, tempDir } from './nbd-test-kit.js';

const SIZE = 64 * MiB;
const SEED = seedFrom(process.env['SECONDSITE_SEED'], 4242);

/**
 * Holds every write for a random few milliseconds, then checks that its buffer still holds what the
 * client sent for that offset (a pooled buffer reused too early would hold another request's bytes).
 */
class SlowCheckingDevice extends PassThroughFilter {
  readonly expected = new Map<number, Buffer>();
  readonly mismatches: number[] = [];
  private readonly rng: Rng;
  constructor(inner: BlockDevice, seed: number) {
    super(inner);
    this.rng = new Rng(seed);
  }
  override async write(offsetBytes: number, data: Buffer, flags: WriteFlags): Promise<void> {
    const before = Buffer.from(data);
    await sleep(this.rng.int(6));
    const want = this.expected.get(offsetBytes);
    if (want === undefined || !data.equals(want) || !before.equals(want)) this.mismatches.push(offsetBytes);
    await this.inner.write(offsetBytes, data, flags);
  }
}

let tmp: { dir: string; cleanup: () => Promise<void> };
let server: NbdServer;
let device: SlowCheckingDevice;
let socketPath: string;

before(async () => {
  tmp = await tempDir();
  device = new SlowCheckingDevice(new MemoryBlockDevice({ sizeBytes: SIZE }), SEED);
  server = new NbdServer();
  server.addExport('disk', device);
  socketPath = `${tmp.dir}/nbd.sock`;
  await server.listenUnix(socketPath);
});
after(async () => {
  await server.close();
  await tmp.cleanup();
});

async function leasesReturn(timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (sharedPayloadPool.leasedCount > 0 && Date.now() < deadline) await sleep(10);
  assert.equal(sharedPayloadPool.leasedCount, 0, 'every pooled payload buffer goes back to the pool');
}

test('concurrent multi-chunk writes each reach the device intact and come back from the pool (seeded)', async () => {
  const rng = new Rng(SEED);
  const sizes = [4096 + 1, 64 * 1024, 64 * 1024 + 28, 200 * 1024, MiB, 3 * MiB];
  const c = await NbdClient.connect({ socketPath, exportName: 'disk' });
  try {
    for (let round = 0; round < 3; round++) {
      const writes: { offset: number; data: Buffer }[] = [];
      let offset = round * 4096;
      for (let i = 0; i < 24; i++) {
        const size = rng.pick(sizes);
        if (offset + size > SIZE) break;
        const data = rng.fill(Buffer.alloc(size)) as Buffer;
        writes.push({ offset, data });
        device.expected.set(offset, data);
        offset += size;
      }
      await Promise.all(writes.map((w) => c.write(w.offset, w.data)));
      assert.deepEqual(device.mismatches, [], `seed ${SEED}: a device call saw another request's bytes`);
      for (const w of writes) {
        const back = await c.read(w.offset, w.data.length);
        assert.ok(back.equals(w.data), `seed ${SEED}: data read back at ${w.offset} differs`);
      }
      await leasesReturn();
    }
  } finally {
    await c.close();
  }
});

function request(type: number, offset: number, length: number, cookie: number): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  b.writeUInt16BE(type, 6);
  b.writeUInt32BE(cookie, 12);
  b.writeBigUInt64BE(BigInt(offset), 16);
  b.writeUInt32BE(length, 24);
  return b;
}

async function openTransmission(): Promise<RawConn> {
  const c = await RawConn.open(socketPath);
  await c.greet();
  c.sendOption(NbdOpt.GO, encodeGoPayload('disk', []));
  assert.equal((await c.finalReply()).at(-1), NbdRep.ACK);
  return c;
}

/** Reads one simple reply: errno and cookie (low 32 bits). */
async function simpleReply(c: RawConn): Promise<{ errno: number; cookie: number }> {
  const r = await c.read(16);
  return { errno: r.readUInt32BE(4), cookie: r.readUInt32BE(12) };
}

test('a client that disconnects in the middle of a payload leaves no buffer leased', async () => {
  const c = await openTransmission();
  c.write(request(NbdCmd.WRITE, 0, 2 * MiB, 1));
  c.write(Buffer.alloc(300 * 1024, 7)); // part of the payload, in several socket chunks
  await sleep(50);
  c.destroy();
  await leasesReturn();
});

test('a refused write with a multi-chunk payload is drained, answered and leaves the stream in sync', async () => {
  const c = await openTransmission();
  try {
    device.expected.set(0, Buffer.alloc(4096, 9));
    c.write(request(NbdCmd.WRITE, SIZE - 4096, MiB, 1)); // past the end: ENOSPC, payload still drained
    c.write(Buffer.alloc(MiB, 1));
    c.write(request(NbdCmd.WRITE, 0, 4096, 2));
    c.write(Buffer.alloc(4096, 9));
    const replies = [await simpleReply(c), await simpleReply(c)].sort((a, b) => a.cookie - b.cookie);
    assert.deepEqual(replies, [
      { errno: NbdErrno.ENOSPC, cookie: 1 },
      { errno: 0, cookie: 2 },
    ]);
    await leasesReturn();
  } finally {
    c.destroy();
  }
});

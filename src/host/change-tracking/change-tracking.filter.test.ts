import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Clock } from '../../domain/clock.js';
import { isSecondsiteError } from '../../domain/errors.js';
import { Rng, seedFrom } from '../../domain/random.js';
import { KiB, MiB } from '../../domain/units.js';
import type { BlockDevice, WriteFlags } from '../block-device/block-device.js';
import { FileBlockDevice } from '../block-device/file.block-device.js';
import { DiskStore } from '../disks/disk-store.js';
import { NodeStorage } from '../storage/node-storage.js';
import { PowerCutStorage } from '../../testing/faults/power-cut-storage.js';
import { ChangeTrackingFilter } from './change-tracking.filter.js';
import { cutCycle } from './cycle-cut.js';
import type { CycleSnapshot } from './cycle-snapshot.js';

const storage = new NodeStorage();
const clock: Clock = { wallMs: () => 0, monotonicMs: () => 0 };
const B = 64 * KiB;
let root: string;
let store: DiskStore;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'secondsite-ctrack-'));
  store = await DiskStore.open(storage, root, clock);
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function track(diskId: string, wrap?: (d: BlockDevice) => BlockDevice): Promise<ChangeTrackingFilter> {
  const dev = await store.openDevice(diskId);
  const p = store.paths(diskId);
  return ChangeTrackingFilter.open(storage, wrap ? wrap(dev) : dev, {
    diskId,
    statePath: p.tracking,
    cowPath: p.cow,
  });
}

const noFua: WriteFlags = { fua: false };
const ranges = (s: CycleSnapshot): Array<[number, number]> =>
  s.changedExtents().map((e) => [e.offsetBytes, e.lengthBytes]);

test('first cycle after enabling is a full resync; later cycles ship only changed blocks', async () => {
  await store.create('d1', { name: 'd1', sizeBytes: 4 * MiB + 512 });
  const f = await track('d1');
  assert.equal(f.resyncReason, 'first-enable');
  const [first] = await cutCycle([f]);
  assert.ok(first);
  assert.equal(first.resyncRequired, true);
  assert.deepEqual(ranges(first), [[0, 4 * MiB + 512]], 'the whole disk, last extent ends at sizeBytes');
  await first.complete();
  assert.equal(f.resyncReason, undefined);
  await f.write(B + 100, Buffer.alloc(10, 1), noFua);
  await f.write(3 * B - 1, Buffer.alloc(2, 1), noFua); // straddles blocks 2 and 3
  await f.writeZeroes(4 * MiB, 512, { fua: false, noHole: false }); // the partial last block
  const [second] = await cutCycle([f]);
  assert.ok(second);
  assert.equal(second.resyncRequired, false);
  assert.equal(second.trackingBlockBytes, B);
  assert.deepEqual(ranges(second), [
    [B, 3 * B],
    [4 * MiB, 512],
  ]);
  await assert.rejects(cutCycle([f]), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'));
  await second.complete();
  await assert.rejects(second.read(0, 10), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'));
  await assert.rejects(second.complete(), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'));
  const [third] = await cutCycle([f]);
  assert.deepEqual(third && ranges(third), [], 'nothing changed');
  await third?.complete();
  await f.close();
});

test('abandon keeps the frozen set; a clean close and reopen keeps both bitmaps', async () => {
  await store.create('d2', { name: 'd2', sizeBytes: 8 * MiB });
  let f = await track('d2');
  await (await cutCycle([f]))[0]?.complete();
  await f.write(0, Buffer.alloc(4096, 1), noFua);
  const [a] = await cutCycle([f]);
  await a?.abandon();
  await f.write(5 * B, Buffer.alloc(4096, 1), noFua);
  const [b] = await cutCycle([f]);
  assert.deepEqual(b && ranges(b), [
    [0, B],
    [5 * B, B],
  ]);
  await b?.abandon();
  await f.write(7 * B, Buffer.alloc(4096, 1), { fua: true });
  assert.deepEqual(f.stats(), {
    activeBlocks: 1,
    shippingBlocks: 2,
    preservedBlocks: 0,
    snapshotLive: false,
  });
  await f.close();
  f = await track('d2');
  assert.equal(f.resyncReason, undefined, 'a clean stop needs no resync');
  assert.deepEqual(f.stats(), {
    activeBlocks: 1,
    shippingBlocks: 2,
    preservedBlocks: 0,
    snapshotLive: false,
  });
  const [c] = await cutCycle([f]);
  assert.equal(c?.resyncRequired, false);
  assert.deepEqual(c && ranges(c), [
    [0, B],
    [5 * B, B],
    [7 * B, B],
  ]);
  await c?.complete();
  await f.close();
});

test('an unclean stop is detected at reopen and turns into a resync until one completes', async () => {
  await store.create('d3', { name: 'd3', sizeBytes: 2 * MiB });
  const f = await track('d3');
  await (await cutCycle([f]))[0]?.complete();
  await f.write(0, Buffer.alloc(512, 1), noFua);
  // "Crash": the process never closes f. Reopen the same files beside it (the DiskStore refuses a
  // second read-write open, so go below it).
  const p = store.paths('d3');
  const dev = await FileBlockDevice.open(await storage.open(p.image, 'readwrite'));
  const g = await ChangeTrackingFilter.open(storage, dev, {
    diskId: 'd3',
    statePath: p.tracking,
    cowPath: p.cow,
  });
  assert.equal(g.resyncReason, 'unclean-stop');
  const [abandoned] = await cutCycle([g]);
  assert.equal(abandoned?.resyncRequired, true);
  await abandoned?.abandon();
  assert.equal(g.resyncReason, 'unclean-stop', 'abandoning a resync keeps it pending');
  const [s] = await cutCycle([g]);
  assert.equal(s?.resyncRequired, true);
  assert.deepEqual(s && ranges(s), [[0, 2 * MiB]]);
  await s?.complete();
  assert.equal(g.resyncReason, undefined);
  await g.close();
  // f's files: its device still has an fd open; close it below the filter without touching the state.
  await (f as unknown as { inner: BlockDevice }).inner.close();
  const h = await track('d3');
  assert.equal(h.resyncReason, undefined, 'the completed resync was persisted');
  await h.close();
});

test('a failed flush requires a resync (fsyncgate)', async () => {
  await store.create('d4', { name: 'd4', sizeBytes: MiB });
  let failFlush = false;
  const f = await track('d4', (d) => ({
    get sizeBytes() {
      return d.sizeBytes;
    },
    get readOnly() {
      return d.readOnly;
    },
    read: (o, l) => d.read(o, l),
    write: (o, data, fl) => d.write(o, data, fl),
    flush: () => (failFlush ? Promise.reject(new Error('EIO: injected')) : d.flush()),
    trim: (o, l, fl) => d.trim(o, l, fl),
    writeZeroes: (o, l, fl) => d.writeZeroes(o, l, fl),
    extents: (o, l) => d.extents(o, l),
    close: () => d.close(),
  }));
  await (await cutCycle([f]))[0]?.complete();
  assert.equal(f.resyncReason, undefined);
  failFlush = true;
  await assert.rejects(f.flush(), /EIO/);
  assert.equal(f.resyncReason, 'flush-failed');
  const [s] = await cutCycle([f]);
  assert.equal(s?.resyncRequired, true);
  await s?.complete();
  assert.equal(f.resyncReason, undefined);
  failFlush = false;
  await f.close();
});

test('growing a disk while tracking is stopped marks the new end as changed', async () => {
  await store.create('d5', { name: 'd5', sizeBytes: MiB + 512 });
  let f = await track('d5');
  await (await cutCycle([f]))[0]?.complete();
  await f.close();
  await store.resize('d5', 2 * MiB);
  f = await track('d5');
  assert.equal(f.resyncReason, undefined);
  const [s] = await cutCycle([f]);
  assert.deepEqual(s && ranges(s), [[MiB, MiB]]);
  await s?.complete();
  await f.close();
});

test('snapshot reads and allocation stay at the cut while seeded random writes race with them', async () => {
  const seed = seedFrom(process.env.SECONDSITE_SEED, 4242);
  const rng = new Rng(seed);
  const size = 4 * MiB;
  await store.create('race', { name: 'race', sizeBytes: size });
  // A disk whose reads take 0-3 ms (a busy disk) widens the window in which a snapshot read and a
  // preserving write overlap.
  const f = await track('race', (d) => slowReads(d, () => rng.int(4)));
  const model = Buffer.alloc(size);
  const randomOp = (offsetBytes: number, lengthBytes: number): Promise<void> => {
    const kind = rng.int(10);
    if (kind < 7) {
      const data = Buffer.from(rng.fill(new Uint8Array(lengthBytes)));
      data.copy(model, offsetBytes);
      return f.write(offsetBytes, data, { fua: rng.chance(0.05) });
    }
    model.fill(0, offsetBytes, offsetBytes + lengthBytes);
    return kind < 8
      ? f.trim(offsetBytes, lengthBytes, noFua)
      : f.writeZeroes(offsetBytes, lengthBytes, { fua: false, noHole: rng.chance(0.5) });
  };
  // Ops in flight together touch disjoint ranges (overlapping concurrent writes have no defined order);
  // an op that would overlap waits for the ones in flight first.
  const batch = async (n: number, extra: () => Promise<void>[] = () => []): Promise<void> => {
    const reads = extra(); // issued first, so the writes below race with them
    let taken: Array<[number, number]> = [];
    let ops: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const lo = rng.int(size / 512) * 512;
      const hi = Math.min(size, lo + (1 + rng.int(rng.chance(0.2) ? 512 : 64)) * 512);
      if (taken.some(([a, b]) => lo < b && a < hi)) {
        await Promise.all(ops);
        ops = [];
        taken = [];
      }
      taken.push([lo, hi]);
      ops.push(randomOp(lo, hi - lo));
    }
    await Promise.all([...reads, ...ops]);
  };
  for (let round = 0; round < 6; round++) {
    await batch(40);
    const cutModel = Buffer.from(model);
    const [snap] = await cutCycle([f]);
    assert.ok(snap);
    const checks = (): Promise<void>[] => {
      const out: Promise<void>[] = [];
      for (let k = 0; k < 6; k++) {
        const at = rng.int(size / 4096) * 4096 + (rng.chance(0.5) ? 512 * rng.int(8) : 0);
        const len = Math.min(size - at, 1 + rng.int(rng.chance(0.3) ? 2 * MiB : 128 * KiB));
        out.push(
          snap.read(at, len).then((buf) => {
            assert.ok(
              buf.equals(cutModel.subarray(at, at + len)),
              `seed ${seed}, round ${round}: snapshot read [${at}, +${len}) differs from the cut`,
            );
          }),
        );
        out.push(
          snap.allocation(at, len).then((map) => {
            let pos = at;
            for (const e of map) {
              assert.equal(e.offsetBytes, pos, `seed ${seed}: allocation not contiguous`);
              if (!e.data) {
                const zeroAtCut = cutModel
                  .subarray(e.offsetBytes, e.offsetBytes + e.lengthBytes)
                  .every((x) => x === 0);
                assert.ok(
                  zeroAtCut,
                  `seed ${seed}, round ${round}: hole at ${e.offsetBytes} had data at the cut`,
                );
              }
              pos += e.lengthBytes;
            }
            assert.equal(pos, at + len, `seed ${seed}: allocation does not cover the range`);
          }),
        );
      }
      return out;
    };
    for (let k = 0; k < 4; k++) await batch(12, checks);
    const whole = await snap.read(0, size);
    assert.ok(
      whole.equals(cutModel),
      `seed ${seed}, round ${round}: full snapshot read differs from the cut`,
    );
    assert.ok(f.stats().preservedBlocks > 0, 'writes after the cut preserved blocks');
    if (rng.chance(0.5)) await snap.complete();
    else await snap.abandon();
    assert.ok(
      (await f.read(0, size)).equals(model),
      `seed ${seed}, round ${round}: live disk differs from model`,
    );
  }
  await f.close();
});

test('a multi-disk cut holds new writes and drains writes in flight', async () => {
  await store.create('vm-a', { name: 'a', sizeBytes: MiB });
  await store.create('vm-b', { name: 'b', sizeBytes: MiB });
  let unblock: () => void = () => undefined;
  const blocked = new Promise<void>((r) => (unblock = r));
  let innerWritesB = 0;
  const a = await track('vm-a', (d) => gateWrites(d, () => blocked));
  const b = await track('vm-b', (d) =>
    gateWrites(d, () => {
      innerWritesB++;
      return Promise.resolve();
    }),
  );
  for (const s of await cutCycle([a, b])) await s.complete();
  const w1 = a.write(0, Buffer.alloc(512, 0xa1), noFua); // in flight, stuck below the filter
  await new Promise((r) => setImmediate(r));
  let cutDone = false;
  const cut = cutCycle([a, b]).then((s) => {
    cutDone = true;
    return s;
  });
  await new Promise((r) => setImmediate(r));
  const before = innerWritesB;
  const w2 = b.write(0, Buffer.alloc(512, 0xb2), noFua); // issued after the hold: must wait
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(cutDone, false, 'the cut waits for the write in flight');
  assert.equal(innerWritesB, before, 'a write issued during the cut is held above the disk');
  unblock();
  const [sa, sb] = await cut;
  await w1;
  await w2;
  assert.ok(sa && sb);
  assert.deepEqual(ranges(sa), [[0, B]], 'the drained write is in the cut');
  assert.deepEqual(ranges(sb), [], 'the held write is not');
  assert.equal((await sa.read(0, 1))[0], 0xa1);
  assert.equal((await sb.read(0, 1))[0], 0, 'disk b at the cut still reads zeros');
  assert.equal((await b.read(0, 1))[0], 0xb2);
  await sa.complete();
  await sb.complete();
  await assert.rejects(cutCycle([a, a]), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT'));
  await a.close();
  await b.close();
  await assert.rejects(a.write(0, Buffer.alloc(1), noFua), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'),
  );
});

/** Passes everything to `d`, but each write first awaits `before()` (a latch for the tests). */
function gateWrites(d: BlockDevice, beforeWrite: () => Promise<void>): BlockDevice {
  return {
    get sizeBytes() {
      return d.sizeBytes;
    },
    get readOnly() {
      return d.readOnly;
    },
    read: (o, l) => d.read(o, l),
    write: async (o, data, fl) => {
      await beforeWrite();
      await d.write(o, data, fl);
    },
    flush: () => d.flush(),
    trim: (o, l, fl) => d.trim(o, l, fl),
    writeZeroes: (o, l, fl) => d.writeZeroes(o, l, fl),
    extents: (o, l) => d.extents(o, l),
    close: () => d.close(),
  };
}

/** Passes everything to `d`, but each read first waits `delayMs()` milliseconds. */
function slowReads(d: BlockDevice, delayMs: () => number): BlockDevice {
  return {
    get sizeBytes() {
      return d.sizeBytes;
    },
    get readOnly() {
      return d.readOnly;
    },
    read: async (o, l) => {
      await new Promise((r) => setTimeout(r, delayMs()));
      return d.read(o, l);
    },
    write: (o, data, fl) => d.write(o, data, fl),
    flush: () => d.flush(),
    trim: (o, l, fl) => d.trim(o, l, fl),
    writeZeroes: (o, l, fl) => d.writeZeroes(o, l, fl),
    extents: (o, l) => d.extents(o, l),
    close: () => d.close(),
  };
}

test('a CoW side-file write failure (ENOSPC) fails the VM write and leaves the snapshot exact', async () => {
  const pc = new PowerCutStorage({ seed: 1, durableMkdir: true });
  await pc.mkdir('/r');
  const s2 = await DiskStore.open(pc, '/r', clock);
  await s2.create('full', { name: 'full', sizeBytes: MiB });
  const p = s2.paths('full');
  const f = await ChangeTrackingFilter.open(pc, await s2.openDevice('full'), {
    diskId: 'full',
    statePath: p.tracking,
    cowPath: p.cow,
  });
  await f.write(0, Buffer.alloc(B, 0x11), noFua);
  for (const s of await cutCycle([f])) await s.complete();
  await f.write(0, Buffer.alloc(B, 0x22), noFua);
  const [snap] = await cutCycle([f]);
  assert.ok(snap);
  pc.failNextWrite(p.cow, 'ENOSPC');
  await assert.rejects(
    f.write(100, Buffer.alloc(10, 0x33), noFua),
    (e: NodeJS.ErrnoException) => e.code === 'ENOSPC',
  );
  assert.equal((await f.read(100, 1))[0], 0x22, 'the failed write did not reach the disk');
  assert.equal((await snap.read(100, 1))[0], 0x22);
  await f.write(100, Buffer.alloc(10, 0x33), noFua); // space again: preserves, then writes
  assert.equal((await f.read(100, 1))[0], 0x33);
  assert.ok((await snap.read(0, B)).equals(Buffer.alloc(B, 0x22)), 'the snapshot still reads the cut');
  await snap.complete();
  await f.close();
});

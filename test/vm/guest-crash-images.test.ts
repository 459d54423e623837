// Every crash image of the guest's disk validates. A recording filter under the NBD server keeps the
// order of the guest's writes and flushes; images are rebuilt at seeded random cuts (the writes before
// the cut, plus the write at the cut torn at a random byte), the way a power cut or a crash-consistent
// recovery point can leave the disk. Each must validate, hold every record durable at the cut, and end
// at the last write before the cut; a guest booted from one continues its log.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Rng } from '../../src/domain/random.js';
import { validateGuestLog } from '../../src/guest/app/guest-log.validator.js';
import type { WriteFlags } from '../../src/host/block-device/block-device.js';
import { MemoryBlockDevice } from '../../src/host/block-device/memory.block-device.js';
import { PassThroughFilter } from '../../src/host/block-device/pass-through.filter.js';
import { NbdServer } from '../../src/host/nbd/nbd-server.js';
import { registerChildCleanup } from '../../src/testing/process/child-process.js';
import { guestCall, removeDir, SEED, sleep, spawnGuest, tempDir } from './vm-test-kit.js';

registerChildCleanup();

type Event = { kind: 'write'; offsetBytes: number; data: Buffer } | { kind: 'flush'; coveredWrites: number };

class RecordingFilter extends PassThroughFilter {
  readonly events: Event[] = [];
  private writes = 0;
  override async write(offsetBytes: number, data: Buffer, flags: WriteFlags): Promise<void> {
    const copy = Buffer.from(data);
    await this.inner.write(offsetBytes, data, flags);
    this.events.push({ kind: 'write', offsetBytes, data: copy });
    this.writes++;
  }
  override async flush(): Promise<void> {
    const coveredWrites = this.writes;
    await this.inner.flush();
    this.events.push({ kind: 'flush', coveredWrites });
  }
}

const DISK_BYTES = 96 * 1024;
let dir: string;
let server: NbdServer;
let socketPath: string;

before(async () => {
  dir = await tempDir('secondsite-vmcrash-');
  server = new NbdServer();
  socketPath = join(dir, 'nbd.sock');
  await server.listenUnix(socketPath);
});
after(async () => {
  await server.close();
  await removeDir(dir);
});

const seqOf = (data: Buffer): number =>
  data.length >= 16 && data.readUInt32BE(0) === 0x53534752 ? Number(data.readBigUInt64BE(8)) : 0;

test('seeded: crash images cut anywhere in the guest’s write stream validate and keep every durable record', async () => {
  const rng = new Rng(SEED);
  const rec = new RecordingFilter(new MemoryBlockDevice({ sizeBytes: DISK_BYTES }));
  server.addExport('rec', rec);
  const settings = {
    recordsPerSec: 1500,
    payloadBytes: rng.pick([0, 100, 500, 1000]),
    flushEveryRecords: 1 + rng.int(30),
    flushEveryMs: 10 + rng.int(100),
  };
  const g = await spawnGuest(dir, {
    guestId: 'crash',
    disks: [`nbd+unix:///rec?socket=${socketPath}`],
    ...settings,
  });
  await g.waitForReady();
  // Run until the log has wrapped several times (on a loaded machine this takes longer than 1 s).
  const deadline = Date.now() + 20_000;
  while (rec.events.length < 1500 && Date.now() < deadline) await sleep(50);
  await g.kill9();
  const events = rec.events;
  const writes = events.filter((e) => e.kind === 'write');
  assert.ok(writes.length > 500, `only ${writes.length} writes`);

  const cuts = Array.from({ length: 150 }, () => rng.int(events.length + 1));
  cuts.push(events.length);
  let wrappedCuts = 0;
  for (const cut of cuts) {
    const img = Buffer.alloc(DISK_BYTES);
    let lastSeq = 0;
    let writesApplied = 0;
    let durableWrites = 0;
    const seqAfterWrites: number[] = [0];
    for (let i = 0; i < cut; i++) {
      const e = events[i] as Event;
      if (e.kind === 'flush') {
        durableWrites = Math.max(durableWrites, e.coveredWrites);
        continue;
      }
      e.data.copy(img, e.offsetBytes);
      writesApplied++;
      lastSeq = Math.max(lastSeq, seqOf(e.data));
      seqAfterWrites.push(lastSeq);
    }
    const next = events.slice(cut).find((e) => e.kind === 'write');
    let tornSeq: number | null = null;
    if (next && rng.chance(0.7)) {
      const tearAt = 1 + rng.int(next.data.length - 1);
      next.data.copy(img, next.offsetBytes, 0, tearAt);
      tornSeq = seqOf(next.data);
    }
    const durableSeq = seqAfterWrites[durableWrites] ?? 0;
    const r = await validateGuestLog((o, l) => Promise.resolve(img.subarray(o, o + l)), DISK_BYTES);
    const msg = `seed ${SEED} ${JSON.stringify(settings)} cut ${cut}/${events.length} writes ${writesApplied} lastSeq ${lastSeq} durable ${durableSeq} torn ${tornSeq}: ${JSON.stringify(r.problem)}`;
    assert.equal(r.valid, true, msg);
    assert.ok(r.lastSeq >= durableSeq, msg);
    assert.ok(r.lastSeq === lastSeq || (tornSeq !== null && r.lastSeq === tornSeq), msg);
    if (r.format && lastSeq > r.format.slotCount) wrappedCuts++;
  }
  assert.ok(
    wrappedCuts > 0,
    `no cut after the log wrapped (seed ${SEED}); the test would not cover the circular case`,
  );

  // Boot a new guest from a crash image taken in the middle: it continues after the last valid record.
  const cut = Math.floor(events.length / 2);
  const img = Buffer.alloc(DISK_BYTES);
  for (const e of events.slice(0, cut)) if (e.kind === 'write') e.data.copy(img, e.offsetBytes);
  const expected = await validateGuestLog((o, l) => Promise.resolve(img.subarray(o, o + l)), DISK_BYTES);
  const dev = new MemoryBlockDevice({ sizeBytes: DISK_BYTES });
  await dev.write(0, img, { fua: false });
  server.addExport('point', dev);
  const g2 = await spawnGuest(dir, {
    guestId: 'crash',
    disks: [`nbd+unix:///point?socket=${socketPath}`],
    listen: [{ host: '127.0.0.1', port: 0 }],
    recordsPerSec: 500,
  });
  const ready = await g2.waitForReady();
  assert.equal(ready.bootSeq, expected.lastSeq);
  assert.equal(ready.incarnation, 2);
  const to = (ready.listen as { host: string; port: number }[])[0] as { host: string; port: number };
  await sleep(300);
  const stop = await guestCall(to, 'POST', '/shutdown');
  assert.equal((await g2.exited).code, 0);
  const final = await validateGuestLog((o, l) => dev.read(o, l), DISK_BYTES);
  assert.equal(final.valid, true, JSON.stringify(final.problem));
  assert.equal(final.lastSeq, stop.body.lastDurableSeq);
  assert.ok(final.lastSeq > expected.lastSeq);
  assert.equal(final.lastRecord?.incarnation, 2);
});

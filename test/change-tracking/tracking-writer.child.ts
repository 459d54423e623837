/**
 * Child process for kill-9.test.ts: tracks a disk on real files and keeps changing it until killed.
 *   argv: <storageRoot> <mode>
 *   mode 'write':  writes random blocks forever (occasional flush)
 *   mode 'cycle':  writes, cuts, reads the snapshot, completes or abandons, forever (the state file is
 *                  replaced on every cut and completion)
 *   mode 'close':  writes blocks 1, 5 and 9 after a completed cycle, closes cleanly, then idles
 * Prints "ready" once the first cycle has completed (and "closed" in mode 'close').
 */
import type { Clock } from '../../src/domain/clock.js';
import { Rng } from '../../src/domain/random.js';
import { KiB } from '../../src/domain/units.js';
import { ChangeTrackingFilter } from '../../src/host/change-tracking/change-tracking.filter.js';
import { cutCycle } from '../../src/host/change-tracking/cycle-cut.js';
import { DiskStore } from '../../src/host/disks/disk-store.js';
import { NodeStorage } from '../../src/host/storage/node-storage.js';

const [root, mode] = process.argv.slice(2);
if (root === undefined || mode === undefined) throw new Error('usage: <storageRoot> <write|cycle|close>');
const clock: Clock = { wallMs: () => Date.now(), monotonicMs: () => performance.now() };
const storage = new NodeStorage();
const store = await DiskStore.open(storage, root, clock);
await store.create('disk', { name: 'disk', sizeBytes: 16 * 64 * KiB });
const p = store.paths('disk');
const f = await ChangeTrackingFilter.open(storage, await store.openDevice('disk'), {
  diskId: 'disk',
  statePath: p.tracking,
  cowPath: p.cow,
});
for (const s of await cutCycle([f])) await s.complete();
const rng = new Rng(Number(process.pid));
const block = Buffer.alloc(4096, 0x5c);

if (mode === 'close') {
  for (const b of [1, 5, 9]) await f.write(b * 64 * KiB, block, { fua: false });
  await f.close();
  process.stdout.write('ready\nclosed\n');
  setInterval(() => undefined, 1000);
} else {
  process.stdout.write('ready\n');
  for (;;) {
    await f.write(rng.int(16) * 64 * KiB, block, { fua: rng.chance(0.1) });
    if (rng.chance(0.1)) await f.flush();
    if (mode === 'cycle') {
      const [s] = await cutCycle([f]);
      if (s === undefined) throw new Error('no snapshot');
      await f.write(rng.int(16) * 64 * KiB, block, { fua: false });
      await s.read(0, s.sizeBytes);
      if (rng.chance(0.5)) await s.complete();
      else await s.abandon();
    }
  }
}

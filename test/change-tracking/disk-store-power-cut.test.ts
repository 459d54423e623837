/**
 * DiskStore metadata under power cuts at every mutating storage call of a disk's life (create, data
 * write with FUA, grow, create another, forced shrink, delete, create again). After each cut the store
 * must open, list without corrupt metadata, and every listed disk must open at one of the sizes it
 * had, with the FUA-written data intact once that write had returned.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Clock } from '../../src/domain/clock.js';
import { seedFrom } from '../../src/domain/random.js';
import { KiB, MiB } from '../../src/domain/units.js';
import { DiskStore } from '../../src/host/disks/disk-store.js';
import type { Storage } from '../../src/host/storage/storage.js';
import { PowerCutStorage, type PowerCutOptions } from '../../src/testing/faults/power-cut-storage.js';
import { MachineStopped, StopAtStorage } from '../../src/testing/faults/stop-at-storage.js';

const SEED = seedFrom(process.env['SECONDSITE_SEED'], 5_150);
const clock: Clock = { wallMs: () => 1, monotonicMs: () => 0 };
const ROOT = '/root';
const PATTERN = Buffer.alloc(4 * KiB, 0x3c);

interface Progress {
  fuaWritten: boolean;
}

async function scenario(storage: Storage, progress: Progress): Promise<void> {
  const store = await DiskStore.open(storage, ROOT, clock);
  await store.create('a', { name: 'a', sizeBytes: MiB });
  const dev = await store.openDevice('a');
  await dev.write(8 * KiB, PATTERN, { fua: true });
  progress.fuaWritten = true;
  await dev.close();
  await store.resize('a', 2 * MiB);
  await store.create('b', { name: 'b', sizeBytes: MiB });
  await store.resize('a', MiB + 512 * KiB, { force: true });
  await store.delete('b');
  await store.create('c', { name: 'c', sizeBytes: 512 * KiB });
}

const SIZES: Record<string, number[]> = { a: [MiB, 2 * MiB, MiB + 512 * KiB], b: [MiB], c: [512 * KiB] };

async function fresh(seed: number): Promise<PowerCutStorage> {
  const s = new PowerCutStorage({ seed });
  await s.mkdir(ROOT);
  await s.syncDir('/');
  return s;
}

test('disk metadata is crash-safe at every storage call', async () => {
  const counter = new StopAtStorage(await fresh(SEED));
  await scenario(counter, { fuaWritten: false });
  const total = counter.mutations;
  const modes: PowerCutOptions[] = [
    { mode: 'none' },
    { mode: 'random-subset', tear: true },
    { mode: 'prefix', tear: true },
  ];
  let sawA = 0;
  for (let cutAt = 0; cutAt <= total; cutAt++) {
    for (const mode of modes) {
      const storage = await fresh(SEED + cutAt);
      const progress: Progress = { fuaWritten: false };
      try {
        await scenario(new StopAtStorage(storage, cutAt), progress);
      } catch (e) {
        if (!(e instanceof MachineStopped)) throw e;
      }
      storage.powerCut(mode);
      const msg = `seed ${SEED}, cut at ${cutAt}/${total} (${mode.mode})`;
      const store = await DiskStore.open(storage, ROOT, clock);
      const disks = await store.list();
      for (const d of disks) {
        assert.ok(SIZES[d.diskId]?.includes(d.sizeBytes), `${msg}: ${d.diskId} has size ${d.sizeBytes}`);
        const dev = await store.openDevice(d.diskId);
        assert.equal(dev.sizeBytes, d.sizeBytes, msg);
        if (d.diskId === 'a') {
          sawA++;
          const data = await dev.read(8 * KiB, PATTERN.length);
          if (progress.fuaWritten) assert.ok(data.equals(PATTERN), `${msg}: a FUA write was lost`);
        }
        await dev.close();
      }
      if (progress.fuaWritten)
        assert.ok(
          disks.some((d) => d.diskId === 'a'),
          `${msg}: disk a vanished`,
        );
      // The store keeps working: the whole scenario's end state can be reached again.
      await store.create('c', { name: 'c', sizeBytes: 512 * KiB });
      await store.delete('b');
    }
  }
  assert.ok(sawA > 0);
});

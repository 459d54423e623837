/**
 * Seeding a store from existing images (reverse replication): the seed point reads exactly the images,
 * a repeated seeding is a no-op, a store with other points is refused, and a power cut at every
 * mutating storage call leaves either the images where they were (nothing seeded) or, once the intent
 * is durable, a seeding that the next open completes to the same store. Seeded: SECONDSITE_SEED.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { PointStore } from '../../src/host/recovery-points/point-store.js';
import { SEED_POINT_ID, seedStore, type SeedIntent } from '../../src/host/recovery-points/point-seeding.js';
import type { Storage } from '../../src/host/storage/storage.js';
import { PowerCutStorage, type PowerCutMode } from '../../src/testing/faults/power-cut-storage.js';
import { MachineStopped, StopAtStorage } from '../../src/testing/faults/stop-at-storage.js';
import { fixedClock } from './store-harness.js';

const SEED = seedFrom(process.env['SECONDSITE_SEED'], 909_000);
const DIR = '/replica';
const SRC = '/disks';

async function setup(
  seed: number,
): Promise<{ disk: PowerCutStorage; images: Map<string, Buffer>; intent: SeedIntent }> {
  const rng = new Rng(seed);
  const disk = new PowerCutStorage({ seed });
  await disk.mkdir(DIR);
  await disk.mkdir(SRC);
  await disk.syncDir('/');
  const images = new Map<string, Buffer>();
  for (const [id, size] of [
    ['d0', 48 * 1024],
    ['d1', 20 * 1024 + 512],
  ] as const) {
    const content = rng.fill(Buffer.alloc(size)) as Buffer;
    content.fill(0, 4096, 12_288); // a hole-like run of zeros
    const f = await disk.open(`${SRC}/${id}.raw`, 'create');
    await f.write(content, 0, content.length, 0);
    await f.datasync();
    await f.close();
    images.set(id, content);
  }
  await disk.syncDir(SRC);
  const intent: SeedIntent = {
    format: 'secondsite-seed-1',
    relationshipId: 'rel',
    epoch: 3,
    cutWallMs: 1_800_000_000_000,
    images: [...images].map(([diskId, b]) => ({
      diskId,
      sourcePath: `${SRC}/${diskId}.raw`,
      sizeBytes: b.length,
    })),
  };
  return { disk, images, intent };
}

function open(storage: Storage): Promise<PointStore> {
  return PointStore.open({ storage, storageDir: DIR, relationshipId: 'rel', clock: fixedClock });
}

async function checkSeeded(storage: Storage, images: Map<string, Buffer>, label: string): Promise<void> {
  const store = await open(storage);
  assert.equal(store.epoch(), 3, label);
  assert.deepEqual(
    store.points().map((p) => p.pointId),
    [SEED_POINT_ID],
    label,
  );
  for (const [id, content] of images) {
    const view = await store.openPointDisk(SEED_POINT_ID, id);
    assert.ok((await view.read(0, content.length)).equals(content), `${label}: seed point of ${id}`);
    await view.close();
    assert.equal(await storage.exists(`${SRC}/${id}.raw`), false, `${label}: ${id} was moved, not copied`);
  }
  await store.close();
}

test('a store seeded from images reads them as its seed point; seeding again is a no-op', async () => {
  const { disk, images, intent } = await setup(SEED);
  // an empty store already open there (a restart after a seeding cut short before its intent) is seeded
  await (await open(disk)).close();
  await seedStore(disk, DIR, intent);
  await checkSeeded(disk, images, `seed=${SEED}`);
  await seedStore(disk, DIR, intent);
  await checkSeeded(disk, images, `seed=${SEED} again`);
  // a store that received cycles is not overwritten by a seed
  const store = await open(disk);
  const w = await store.beginCycle('c1', 3);
  await w.writeChunk('d0', 0, Buffer.alloc(4096, 7));
  await w.commit({ cutWallMs: 2, consistency: 'crash-consistent' });
  await store.close();
  await assert.rejects(seedStore(disk, DIR, intent), /already keeps a replica/);
});

test('seeding an empty store that holds a first cycle cut short replaces its bases and staging', async () => {
  const { disk, images, intent } = await setup(SEED + 1);
  // an initial replication began here (its first cycle writes straight into the bases) and stopped
  const store = await open(disk);
  for (const [id, b] of images) await store.ensureDisk(id, b.length);
  await store.setEpoch(3);
  const w = await store.beginCycle('first', 3);
  await w.writeChunk('d0', 0, Buffer.alloc(8192, 0xee));
  await w.writeChunk('d1', 4096, Buffer.alloc(4096, 0xdd));
  await store.close();
  await seedStore(disk, DIR, intent);
  await checkSeeded(disk, images, `seed=${SEED + 1}: the images, not the cut-short cycle's bytes`);
  // and the next cycle does not adopt the cut-short cycle's staging
  const again = await open(disk);
  const whole = Object.fromEntries(
    [...images].map(([id, b]) => [id, [{ offsetBytes: 0, lengthBytes: b.length }]]),
  );
  const next = await again.beginCycle('next', 3, { adoptWithin: whole });
  assert.deepEqual(Object.values(next.adopted()).flat(), [], 'nothing of the old staging is adopted');
  await next.discard();
  await again.close();
});

test('power cut at every mutating call of a seeding: nothing seeded, or completed at the next open', async () => {
  const modes: PowerCutMode[] = ['none', 'random-subset', 'prefix'];
  const clean = await setup(SEED + 1);
  const counter = new StopAtStorage(clean.disk);
  await seedStore(counter, DIR, clean.intent);
  const total = counter.mutations;
  const seen = { nothing: 0, seeded: 0 };
  for (let crashAt = 0; crashAt <= total; crashAt++) {
    const label = `seed=${SEED + 1} crashAt=${crashAt}/${total}`;
    const { disk, images, intent } = await setup(SEED + 1);
    const storage = new StopAtStorage(disk, crashAt);
    await seedStore(storage, DIR, intent).catch((e: unknown) => {
      if (!(e instanceof MachineStopped) && !(e instanceof Error && e.cause instanceof MachineStopped))
        throw e;
    });
    disk.powerCut({ mode: modes[crashAt % 3] as PowerCutMode, tear: crashAt % 2 === 0 });
    if (await disk.exists(`${DIR}/rel/seed.meta`)) {
      seen.seeded++;
      await checkSeeded(disk, images, label); // the open finishes it
    } else if (await disk.exists(`${DIR}/rel/catalogue.meta`)) {
      seen.seeded++;
      await checkSeeded(disk, images, label);
    } else {
      seen.nothing++;
      for (const [id, content] of images) {
        const f = await disk.open(`${SRC}/${id}.raw`, 'read');
        const buf = Buffer.alloc(content.length);
        await f.read(buf, 0, buf.length, 0);
        await f.close();
        assert.ok(buf.equals(content), `${label}: image ${id} untouched`);
      }
      await seedStore(disk, DIR, intent);
      await checkSeeded(disk, images, `${label} (seeded again)`);
    }
  }
  assert.ok(seen.nothing > 0 && seen.seeded > 0, JSON.stringify(seen));
});

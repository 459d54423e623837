/**
 * Promotion of a view to plain disk images (failover commit, docs/design/failover.md section 5):
 * the images equal the chosen point plus the view's own writes, the store is gone afterwards, and a
 * power cut at every mutating storage call of the promotion leaves either the untouched store (every
 * point exact, the view still there) or, once the intent is durable, a promotion that
 * `finishPromotion` completes to exactly the same images. Seeded: SECONDSITE_SEED.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { PointStore } from '../../src/host/recovery-points/point-store.js';
import type { Storage } from '../../src/host/storage/storage.js';
import { PowerCutStorage, type PowerCutMode } from '../../src/testing/faults/power-cut-storage.js';
import { MachineStopped, StopAtStorage } from '../../src/testing/faults/stop-at-storage.js';
import { DiskModel, fixedClock, randomCycle, stage, verifyPoints } from './store-harness.js';

const SEED = seedFrom(process.env['SECONDSITE_SEED'], 808_000);
const DIR = '/replica';
const TARGET_DIR = '/disks';
const SIZES = { a: 96 * 1024, b: 40 * 1024 + 512 } as const;

interface Built {
  disk: PowerCutStorage;
  storage: StopAtStorage;
  store: PointStore;
  model: DiskModel;
  /** Per disk: the content the promoted image must have. */
  expected: Map<string, Buffer>;
  pointId: string;
}

function open(storage: Storage): Promise<PointStore> {
  return PointStore.open({ storage, storageDir: DIR, relationshipId: 'rel', clock: fixedClock });
}

/** Cycles, a view over a random retained point with random writes flushed into it, the view closed. */
async function build(seed: number): Promise<Built> {
  const rng = new Rng(seed);
  const disk = new PowerCutStorage({ seed });
  await disk.mkdir(DIR);
  await disk.mkdir(TARGET_DIR);
  await disk.syncDir('/');
  const storage = new StopAtStorage(disk);
  const store = await open(storage);
  const model = new DiskModel();
  for (const [id, size] of Object.entries(SIZES)) {
    await store.ensureDisk(id, size);
    model.resize(id, size);
  }
  const cycles = 2 + rng.int(4);
  for (let i = 1; i <= cycles; i++) {
    const w = await store.beginCycle(`c${i}`, 0);
    await stage(w, randomCycle(rng, model, 8), rng);
    model.snapshot((await w.commit({ cutWallMs: i, consistency: 'crash-consistent' })).pointId);
  }
  const points = store.points();
  const pointId = (points[rng.int(points.length)] ?? points[0])!.pointId;
  const expected = new Map<string, Buffer>();
  for (const [id, buf] of model.snapshots.get(pointId) ?? []) expected.set(id, Buffer.from(buf));
  const view = await store.openTestView(pointId, 'failover-vm');
  for (const [id, content] of expected) {
    const dev = await view.disk(id);
    for (let i = rng.int(6); i > 0; i--) {
      const off = rng.int(content.length);
      const len = 1 + rng.int(Math.min(20_000, content.length - off));
      if (rng.chance(0.25)) {
        await dev.writeZeroes(off, len, { fua: false, noHole: false });
        content.fill(0, off, off + len);
      } else {
        const data = rng.fill(Buffer.alloc(len)) as Buffer;
        await dev.write(off, data, { fua: false });
        data.copy(content, off);
      }
    }
    await dev.flush();
  }
  await view.close();
  return { disk, storage, store, model, expected, pointId };
}

const targets = { a: `${TARGET_DIR}/a.raw`, b: `${TARGET_DIR}/b.raw` };

async function readImage(storage: Storage, path: string, sizeBytes: number): Promise<Buffer> {
  const f = await storage.open(path, 'read');
  try {
    assert.equal(await f.sizeBytes(), sizeBytes, `${path} size`);
    const buf = Buffer.alloc(sizeBytes);
    await f.read(buf, 0, sizeBytes, 0);
    return buf;
  } finally {
    await f.close();
  }
}

async function checkPromoted(storage: Storage, b: Built, label: string): Promise<void> {
  for (const [id, content] of b.expected) {
    const got = await readImage(storage, targets[id as keyof typeof targets], content.length);
    if (!got.equals(content)) {
      let at = 0;
      while (got[at] === content[at]) at++;
      assert.fail(
        `${label}: promoted disk ${id} differs from point ${b.pointId} + view writes at byte ${at}`,
      );
    }
  }
  assert.deepEqual(await storage.list(DIR), [], `${label}: the store is gone`);
}

test('a promoted view is the point plus its writes, in place; the store is gone', async () => {
  for (let i = 0; i < 6; i++) {
    const seed = SEED + i;
    const b = await build(seed);
    await b.store.promoteView('failover-vm', targets);
    await checkPromoted(b.disk, b, `seed=${seed}`);
    assert.equal(b.store.state, 'closed');
    // an unknown view or a disk outside the point is refused, before anything changes
    const again = await open(b.disk);
    await assert.rejects(again.promoteView('nope', targets), /no view nope/);
    await again.close();
  }
});

test('power cut at every mutating call of a promotion: untouched store, or finished to the same images', async () => {
  const modes: PowerCutMode[] = ['none', 'random-subset', 'prefix'];
  let cases = 0;
  const seen = { before: 0, after: 0 };
  for (let s = 0; s < 3; s++) {
    const seed = SEED + 100 + s;
    const clean = await build(seed);
    const start = clean.storage.mutations;
    await clean.store.promoteView('failover-vm', targets);
    const total = clean.storage.mutations - start;
    for (let crashAt = 0; crashAt <= total; crashAt++) {
      const mode = modes[(crashAt + s) % modes.length] as PowerCutMode;
      const label = `seed=${seed} crashAt=${crashAt}/${total} mode=${mode}`;
      const b = await build(seed);
      b.storage.armStop(crashAt);
      try {
        await b.store.promoteView('failover-vm', targets);
      } catch (e) {
        if (!(e instanceof MachineStopped) && !(e instanceof Error && e.cause instanceof MachineStopped))
          throw e;
      }
      b.disk.powerCut({ mode, tear: crashAt % 2 === 1 });
      const storage = new StopAtStorage(b.disk);
      const options = { storage, storageDir: DIR, relationshipId: 'rel', clock: fixedClock };
      const finished = await PointStore.finishPromotion(options);
      if (finished !== null || !(await storage.exists(`${DIR}/rel/catalogue.meta`))) {
        seen.after++;
        await checkPromoted(storage, b, label);
      } else {
        seen.before++;
        const store = await open(storage);
        await verifyPoints(store, b.model, label);
        assert.equal(store.testViews().get('failover-vm'), b.pointId, `${label}: the view survives`);
        await store.promoteView('failover-vm', targets);
        await checkPromoted(storage, b, `${label} (promoted again)`);
      }
      cases++;
    }
  }
  assert.ok(seen.before > 0 && seen.after > 0, `both outcomes seen: ${JSON.stringify(seen)}`);
  console.log(`promotion power-cut cases: ${cases} (${seen.before} before the intent, ${seen.after} after)`);
});

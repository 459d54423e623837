/**
 * Power cuts at every mutating storage call of a change-tracking life (enable, resync cycle, writes,
 * completed and abandoned cycles, clean close), with unsynced writes dropped, torn or cut to a prefix.
 * Uses the testing kit's PowerCutStorage, stopped at the n-th mutating call by StopAtStorage. After each cut, reopening must either demand a resync (first enable or unclean
 * stop; never an unreadable state file, since it is only ever replaced atomically), or, only if the
 * clean close had become durable, report exactly the blocks changed since the last completed cycle.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Clock } from '../../src/domain/clock.js';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { KiB, MiB } from '../../src/domain/units.js';
import { ChangeTrackingFilter } from '../../src/host/change-tracking/change-tracking.filter.js';
import { cutCycle } from '../../src/host/change-tracking/cycle-cut.js';
import { DiskStore } from '../../src/host/disks/disk-store.js';
import type { Storage } from '../../src/host/storage/storage.js';
import { PowerCutStorage, type PowerCutOptions } from '../../src/testing/faults/power-cut-storage.js';
import { MachineStopped, StopAtStorage } from '../../src/testing/faults/stop-at-storage.js';

const SEED = seedFrom(process.env['SECONDSITE_SEED'], 31_337);
const clock: Clock = { wallMs: () => 0, monotonicMs: () => 0 };
const ROOT = '/root';
const B = 16 * KiB;
const SIZE = MiB;

async function openFilter(storage: Storage): Promise<ChangeTrackingFilter> {
  const store = await DiskStore.open(storage, ROOT, clock);
  await store.create('disk', { name: 'disk', sizeBytes: SIZE });
  const p = store.paths('disk');
  return ChangeTrackingFilter.open(storage, await store.openDevice('disk'), {
    diskId: 'disk',
    statePath: p.tracking,
    cowPath: p.cow,
    trackingBlockBytes: B,
  });
}

/** The scenario; returns the blocks that a clean reopen must report as changed. */
async function scenario(storage: Storage, seed: number): Promise<number[]> {
  const rng = new Rng(seed);
  const f = await openFilter(storage);
  let expected = new Set<number>();
  const writes = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const block = rng.int(SIZE / B);
      expected.add(block);
      await f.write(block * B + rng.int(B / 512) * 512, Buffer.alloc(512, 1 + rng.int(255)), {
        fua: rng.chance(0.2),
      });
    }
  };
  for (const s of await cutCycle([f])) await s.complete(); // the first-enable resync
  await writes(4);
  const [a] = await cutCycle([f]);
  expected = new Set<number>(); // what `a` froze is forgotten when it completes
  await writes(3); // after the cut: CoW-preserved, tracked in active
  await a?.complete();
  await writes(3);
  const [b] = await cutCycle([f]);
  await b?.abandon(); // abandoned: its frozen set stays
  await writes(2);
  await f.close();
  return [...expected].sort((x, y) => x - y);
}

async function freshStorage(seed: number): Promise<PowerCutStorage> {
  const storage = new PowerCutStorage({ seed });
  await storage.mkdir(ROOT);
  await storage.syncDir('/');
  return storage;
}

test('change tracking survives a power cut at every storage call', async () => {
  const clean = await freshStorage(SEED);
  const counter = new StopAtStorage(clean);
  const blocks = await scenario(counter, SEED);
  const total = counter.mutations;
  const reopened = await openFilter(clean);
  assert.equal(reopened.resyncReason, undefined, `seed ${SEED}: a clean close needs no resync`);
  const [s] = await cutCycle([reopened]);
  const expectedExtents = s?.changedExtents().map((e) => [e.offsetBytes, e.lengthBytes]);
  await s?.abandon();
  await reopened.close();
  assert.deepEqual(
    expectedExtents,
    toExtents(blocks),
    `seed ${SEED}: a clean close and reopen loses no change`,
  );

  const modes: PowerCutOptions[] = [
    { mode: 'none' },
    { mode: 'random-subset', tear: true },
    { mode: 'prefix', tear: true },
  ];
  const seen = { resync: 0, clean: 0 };
  for (let cutAt = 0; cutAt <= total; cutAt++) {
    for (const mode of modes) {
      const storage = await freshStorage(SEED + cutAt);
      try {
        await scenario(new StopAtStorage(storage, cutAt), SEED);
      } catch (e) {
        if (!(e instanceof MachineStopped)) throw e;
      }
      storage.powerCut(mode);
      const msg = `seed ${SEED}, power cut at mutation ${cutAt}/${total} (${mode.mode})`;
      const f = await openFilter(storage);
      const reason = f.resyncReason;
      assert.notEqual(reason, 'state-unreadable', `${msg}: the state file was torn`);
      const [snap] = await cutCycle([f]);
      assert.ok(snap);
      if (reason === undefined) {
        seen.clean++;
        assert.equal(snap.resyncRequired, false, msg);
        assert.deepEqual(
          snap.changedExtents().map((e) => [e.offsetBytes, e.lengthBytes]),
          expectedExtents,
          `${msg}: a clean reopen must report exactly the blocks changed since the last completed cycle`,
        );
      } else {
        seen.resync++;
        assert.ok(reason === 'first-enable' || reason === 'unclean-stop', `${msg}: reason ${reason}`);
        assert.equal(snap.resyncRequired, true, msg);
        assert.deepEqual(
          snap.changedExtents().map((e) => [e.offsetBytes, e.lengthBytes]),
          [[0, SIZE]],
          msg,
        );
      }
      await snap.complete();
      await f.close();
    }
  }
  assert.ok(seen.clean > 0 && seen.resync > 0, `both outcomes were exercised: ${JSON.stringify(seen)}`);
});

function toExtents(blocks: number[]): number[][] {
  const out: number[][] = [];
  for (const b of blocks) {
    const last = out[out.length - 1];
    if (last !== undefined && (last[0] ?? 0) + (last[1] ?? 0) === b * B) last[1] = (last[1] ?? 0) + B;
    else out.push([b * B, B]);
  }
  return out;
}

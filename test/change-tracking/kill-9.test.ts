/**
 * Process crashes (kill -9) of a host agent that tracks a disk on real files (NodeStorage): after each,
 * the state file verifies (it is only replaced atomically) and reopening demands a resync; after a
 * clean close, a later kill changes nothing and the changed blocks are reported exactly.
 * (kill -9 tests recovery logic, not fsync placement; power-cut.test.ts covers that.)
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Clock } from '../../src/domain/clock.js';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { KiB } from '../../src/domain/units.js';
import { ChangeTrackingFilter } from '../../src/host/change-tracking/change-tracking.filter.js';
import { cutCycle } from '../../src/host/change-tracking/cycle-cut.js';
import { decodeTrackingState } from '../../src/host/change-tracking/tracking-state.js';
import { DiskStore } from '../../src/host/disks/disk-store.js';
import { NodeStorage } from '../../src/host/storage/node-storage.js';

const SEED = seedFrom(process.env['SECONDSITE_SEED'], 9_009);
const clock: Clock = { wallMs: () => 0, monotonicMs: () => 0 };
const children: ChildProcess[] = [];
const dirs: string[] = [];
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function runChild(root: string, mode: string, waitFor: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, 'tracking-writer.child.ts'), root, mode],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  let out = '';
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(`${waitFor}\n`)) resolve();
    });
    child.on('exit', (code) => reject(new Error(`child exited early (${code}): ${err}`)));
  });
  return child;
}

async function kill9(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

async function reopen(root: string): Promise<ChangeTrackingFilter> {
  const storage = new NodeStorage();
  const store = await DiskStore.open(storage, root, clock);
  const p = store.paths('disk');
  const bytes = await readFile(p.tracking);
  const decoded = decodeTrackingState(bytes);
  assert.ok(typeof decoded !== 'string', `seed ${SEED}: the state file does not verify after kill -9`);
  return ChangeTrackingFilter.open(storage, await store.openDevice('disk'), {
    diskId: 'disk',
    statePath: p.tracking,
    cowPath: p.cow,
  });
}

test('kill -9 while writing or cycling: the state verifies and the next cycle is a resync', async () => {
  const rng = new Rng(SEED);
  for (const mode of ['write', 'cycle', 'cycle']) {
    const root = await mkdtemp(join(tmpdir(), 'secondsite-kill9-'));
    dirs.push(root);
    const child = await runChild(root, mode, 'ready');
    await new Promise((r) => setTimeout(r, 50 + rng.int(250)));
    await kill9(child);
    const f = await reopen(root);
    assert.equal(f.resyncReason, 'unclean-stop', `seed ${SEED}, mode ${mode}`);
    const [s] = await cutCycle([f]);
    assert.equal(s?.resyncRequired, true);
    await s?.complete();
    await f.close();
    const g = await reopen(root);
    assert.equal(g.resyncReason, undefined, 'the completed resync was recorded');
    await g.close();
  }
});

test('kill -9 after a clean close: no resync, exactly the written blocks', async () => {
  const root = await mkdtemp(join(tmpdir(), 'secondsite-kill9-'));
  dirs.push(root);
  const child = await runChild(root, 'close', 'closed');
  await kill9(child);
  const f = await reopen(root);
  assert.equal(f.resyncReason, undefined);
  const [s] = await cutCycle([f]);
  assert.deepEqual(
    s?.changedExtents().map((e) => [e.offsetBytes / (64 * KiB), e.lengthBytes / (64 * KiB)]),
    [
      [1, 1],
      [5, 1],
      [9, 1],
    ],
  );
  assert.equal((await s?.read(5 * 64 * KiB, 1))?.[0], 0x5c);
  await s?.complete();
  await f.close();
});

/**
 * Change tracking seen from a real NBD client: qemu-io writes, zeroes and discards through our NBD
 * server into a tracked disk on real files; the cut must report exactly the touched tracking blocks,
 * and a snapshot must keep reading the cut content while qemu-io overwrites it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type { Clock } from '../../src/domain/clock.js';
import { KiB, MiB } from '../../src/domain/units.js';
import { ChangeTrackingFilter } from '../../src/host/change-tracking/change-tracking.filter.js';
import { cutCycle } from '../../src/host/change-tracking/cycle-cut.js';
import { DiskStore } from '../../src/host/disks/disk-store.js';
import { NbdServer } from '../../src/host/nbd/nbd-server.js';
import { NodeStorage } from '../../src/host/storage/node-storage.js';

const exec = promisify(execFile);
const clock: Clock = { wallMs: () => 0, monotonicMs: () => 0 };
let dir: string;
let server: NbdServer;
let filter: ChangeTrackingFilter;
let uri: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'secondsite-nbd-ct-'));
  const storage = new NodeStorage();
  const store = await DiskStore.open(storage, dir, clock);
  await store.create('d0', { name: 'd0', sizeBytes: 16 * MiB });
  const p = store.paths('d0');
  filter = await ChangeTrackingFilter.open(storage, await store.openDevice('d0'), {
    diskId: 'd0',
    statePath: p.tracking,
    cowPath: p.cow,
  });
  server = new NbdServer();
  server.addExport('d0', filter);
  const socket = join(dir, 'nbd.sock');
  await server.listenUnix(socket);
  uri = `nbd+unix:///d0?socket=${socket}`;
});

after(async () => {
  await server.close();
  await filter.close();
  await rm(dir, { recursive: true, force: true });
});

async function qemuIo(...commands: string[]): Promise<string> {
  const args = ['-f', 'raw', ...commands.flatMap((c) => ['-c', c]), uri];
  const { stdout, stderr } = await exec('qemu-io', args);
  const out = stdout + stderr;
  assert.doesNotMatch(out, /fail|error/i, out);
  return out;
}

test('qemu-io writes, zeroes and discards are tracked; snapshots hold the cut', async () => {
  for (const s of await cutCycle([filter])) await s.complete(); // the first-enable resync
  const B = 64 * KiB;
  await qemuIo(
    'write -P 0xab 1M 4k',
    'write -P 0xcd 5M 128k',
    'write -z 9M 64k',
    'discard 12M 1M',
    'write -f -P 0x11 15M 512', // FUA
    'flush',
  );
  const [snap] = await cutCycle([filter]);
  assert.ok(snap);
  assert.deepEqual(
    snap.changedExtents().map((e) => [e.offsetBytes / B, e.lengthBytes / B]),
    [
      [16, 1],
      [80, 2],
      [144, 1],
      [192, 16],
      [240, 1],
    ],
  );
  await qemuIo('write -P 0xee 1M 64k', 'read -P 0xee 1M 64k', 'discard 5M 128k');
  const at1M = await snap.read(MiB, 8 * KiB);
  assert.ok(
    at1M.subarray(0, 4096).every((b) => b === 0xab),
    'snapshot lost the cut content at 1M',
  );
  assert.ok(
    at1M.subarray(4096).every((b) => b === 0),
    'snapshot shows a write made after the cut',
  );
  assert.ok(
    (await snap.read(5 * MiB, 128 * KiB)).every((b) => b === 0xcd),
    'the discard leaked into the snapshot',
  );
  const map = await snap.allocation(5 * MiB, 128 * KiB);
  assert.ok(
    map.every((e) => e.data),
    'at the cut the discarded range was allocated',
  );
  await snap.complete();
  const [next] = await cutCycle([filter]);
  assert.deepEqual(
    next?.changedExtents().map((e) => [e.offsetBytes / B, e.lengthBytes / B]),
    [
      [16, 1],
      [80, 2],
    ],
  );
  await next?.complete();
});

/**
 * Offline initial replication (export to a folder, carry, import, then enable with an existing copy),
 * run with the CLI: the first cycle compares digests against the imported copy and sends only the
 * chunks written after the export; the first real point equals the primary's disk.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { NbdClient } from '../../src/guest/nbd-client.js';
import { Rng, seedFrom } from '../../src/domain/random.js';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import {
  cleanupsAfterAll,
  createDisks,
  MiB,
  openLatestPoint,
  replicaView,
  twoHostLab,
  waitFor,
} from './fixtures.js';

const bin = new URL('../../bin/secondsite.mjs', import.meta.url).pathname;
const cleanups = cleanupsAfterAll();

function ss(...args: string[]): string {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `secondsite ${args.join(' ')}\n${r.stderr}`);
  return r.stdout;
}

const DISK_BYTES = 32 * MiB;
const CHUNK_BYTES = MiB; // the default transfer chunk

test('offline initial replication: export, import, enable with an existing copy; only later changes move', async () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 3434);
  const rng = new Rng(seed);
  const { lab, dir, cleanup } = await twoHostLab('ss-offline-');
  cleanups.push(cleanup);
  const a = lab.host('host-a');
  const b = lab.host('host-b');
  await createDisks(lab, 'host-a', [{ diskId: 'o-d0', sizeBytes: DISK_BYTES }]);
  const content = Buffer.alloc(DISK_BYTES);
  rng.fill(content.subarray(0, 12 * MiB)); // 12 MiB of data, the rest never written (sparse)
  const writer = await NbdClient.connect({ socketPath: a.nbdSocket, exportName: 'o-d0' });
  await writer.write(0, content.subarray(0, 12 * MiB), { fua: true });

  // 1. export on host-a, 2. carry the folder to host-b (here: same machine, same file system)
  const carried = await mkdtemp(join(dir, 'carried-'));
  assert.match(
    ss('host', 'disk', 'export', 'o-d0', '--to', carried, '--state-dir', a.stateDir),
    /exported to .*o-d0\.raw \(12/,
  );
  // the VM keeps writing after the export: two chunks change
  const changed = rng.fill(Buffer.alloc(4096)) as Buffer;
  for (const at of [MiB, 20 * MiB]) {
    await writer.write(at, changed, { fua: true });
    changed.copy(content, at);
  }
  await writer.close();

  // 3. import on host-b, 4. enable on host-a with the existing copy
  assert.match(
    ss('host', 'replica', 'import', 'o', '--from', carried, '--disks', 'o-d0', '--state-dir', b.stateDir),
    /imported \(seed point rp-1\)/,
  );
  ss(
    'host',
    'replication',
    'enable',
    'o',
    '--disks',
    'o-d0',
    '--replica',
    'host-b',
    '--address',
    '127.0.0.1',
    '--port',
    String(b.replicationPort),
    '--copy-frequency',
    '30s',
    '--initial',
    'existing-copy',
    '--state-dir',
    a.stateDir,
  );
  const point = await waitFor(
    'the first point after the import',
    async () => {
      const v = await replicaView(lab, 'o');
      return v.latestPoint !== null && v.latestPoint.cycleId !== 'seed' ? v.latestPoint : null;
    },
    60_000,
  );
  const sent = (await a.client.get<RelationshipView>('/v1/relationships/o')).report.bytes.logicalSent;
  assert.ok(
    sent > 0 && sent <= 2 * CHUNK_BYTES,
    `sent ${sent} bytes: only the two chunks changed after the export`,
  );
  const opened = await openLatestPoint(lab, 'o', ['o-d0'], (p) => p.sequence >= point.sequence);
  try {
    assert.ok((await opened.clients[0]!.read(0, DISK_BYTES)).equals(content), `seed ${seed}`);
  } finally {
    await opened.close();
  }
});

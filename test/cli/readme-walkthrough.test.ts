/**
 * The README's "Host replication, step by step" and "VMs and failover, step by step", run as a user
 * would: only the `secondsite` command
 * (real agent processes, real TLS between them, qemu-io writing through the NBD server, qemu-img
 * comparing the primary with an exported recovery point). If this breaks, the README is wrong.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import type { PointExport, ReplicaView } from '../../src/host/agent/replica-service.js';
import { freePort } from '../../src/lab/host-lab.js';

const bin = new URL('../../bin/secondsite.mjs', import.meta.url).pathname;
const children: ChildProcess[] = [];
let dir = '';
after(async () => {
  for (const c of children) c.kill('SIGTERM');
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) await new Promise((r) => c.once('exit', r));
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

function ss(...args: string[]): string {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir });
  assert.equal(r.status, 0, `secondsite ${args.join(' ')}\n${r.stderr}`);
  return r.stdout;
}

function json<T>(...args: string[]): T {
  return JSON.parse(ss(...args, '--output', 'json')) as T;
}

async function serve(stateDir: string): Promise<void> {
  const child = spawn(process.execPath, [bin, 'host', 'serve', '--state-dir', stateDir], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', () => resolve());
    child.once('exit', (code) => reject(new Error(`agent ${stateDir} exited ${code}`)));
  });
}

async function until<T>(what: string, fn: () => T | null, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test('README walkthrough: CA, two hosts, disks, replication, status, points, export, pause/resume/disable', async () => {
  dir = await mkdtemp(join(tmpdir(), 'ss-readme-'));
  const port = String(await freePort());
  // 1. a CA and two hosts
  ss('ca', 'init', 'ca');
  ss('host', 'init', '--host-id', 'host-a', '--state-dir', 'a', '--ca', 'ca');
  ss(
    'host',
    'init',
    '--host-id',
    'host-b',
    '--state-dir',
    'b',
    '--ca',
    'ca',
    '--authorize',
    'host-a',
    '--replication-port',
    port,
  );
  // 2. the agents
  await serve('a');
  await serve('b');
  // 3. disks, written through the NBD server
  ss('host', 'disk', 'create', 'vm1-d0', '--size', '64M', '--state-dir', 'a');
  const d1 = json<{ nbdUri: string }>(
    'host',
    'disk',
    'create',
    'vm1-d1',
    '--size',
    '16M',
    '--state-dir',
    'a',
  );
  const write = spawnSync('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 1M 2M', '-c', 'flush', d1.nbdUri], {
    cwd: dir,
    encoding: 'utf8',
  });
  assert.equal(write.status, 0, write.stderr);
  // 4. replicate
  const enabled = ss(
    'host',
    'replication',
    'enable',
    'vm1',
    '--disks',
    'vm1-d0,vm1-d1',
    '--replica',
    'host-b',
    '--address',
    '127.0.0.1',
    '--port',
    port,
    '--copy-frequency',
    'continuous',
    '--retention-hours',
    '72',
    '--state-dir',
    'a',
  );
  assert.match(enabled, /replicating vm1 \(vm1-d0, vm1-d1\) to host-b every continuous/);
  // 5. watch it and use the points
  const view = await until('a recovery point on host-b', () => {
    const v = json<ReplicaView>('host', 'replica', 'points', 'vm1', '--state-dir', 'b');
    return v.latestPoint && v.latestPoint.cutWallMs > Date.now() - 60_000 && v.points.length > 0 ? v : null;
  });
  assert.deepEqual(view.disks.map((d) => d.diskId).sort(), ['vm1-d0', 'vm1-d1']);
  assert.match(ss('host', 'status', '--state-dir', 'a'), /vm1\s+vm1-d0,vm1-d1\s+host-b:\d+\s+continuous/);
  const rel = json<{ relationships: RelationshipView[] }>('host', 'replication', 'list', '--state-dir', 'a');
  assert.equal(rel.relationships[0]?.definition.policy.retentionHours, 72);
  assert.match(ss('host', 'replica', 'list', '--state-dir', 'b'), /vm1\s+default\s+0/);
  const measured = json<{ successfulCycles: number; maxSizeBytes: number; pendingBytes: number }>(
    'host',
    'replication',
    'measure',
    'vm1',
    '--state-dir',
    'a',
  );
  assert.ok(measured.successfulCycles > 0 && measured.maxSizeBytes > 0 && measured.pendingBytes >= 0);
  assert.match(ss('host', 'replication', 'measure', 'vm1', '--state-dir', 'a'), /latency\s+average \d+ ms/);

  const exp = json<PointExport>('host', 'replica', 'export', 'vm1', 'latest', '--state-dir', 'b');
  const replicaD1 = exp.disks.find((d) => d.diskId === 'vm1-d1');
  assert.ok(replicaD1);
  const cmp = spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', d1.nbdUri, replicaD1.nbdUri], {
    cwd: dir,
    encoding: 'utf8',
  });
  assert.equal(cmp.status, 0, `${cmp.stdout}${cmp.stderr}`);
  const readOnly = spawnSync('qemu-io', ['-f', 'raw', '-c', 'write -P 1 0 4k', replicaD1.nbdUri], {
    cwd: dir,
    encoding: 'utf8',
  });
  assert.match(
    `${readOnly.stdout}${readOnly.stderr}`,
    /read-only|Permission denied|Operation not permitted|EPERM/i,
  );
  ss('host', 'replica', 'unexport', 'vm1', exp.pointId, '--state-dir', 'b');

  // 6-8. (README "VMs and failover, step by step") a VM, a test failover, a failover and its commit
  await vmsAndFailover(port);

  assert.match(ss('host', 'replication', 'pause', 'vm1', '--state-dir', 'a'), /paused/);
  assert.equal(
    json<RelationshipView>('host', 'replication', 'show', 'vm1', '--state-dir', 'a').definition.state,
    'paused',
  );
  assert.match(ss('host', 'replication', 'resume', 'vm1', '--state-dir', 'a'), /resumed/);
  const okBefore = json<RelationshipView>('host', 'replication', 'show', 'vm1', '--state-dir', 'a').report
    .cycles.ok;
  const resumed = await until('cycles after resume', () => {
    const v = json<RelationshipView>('host', 'replication', 'show', 'vm1', '--state-dir', 'a');
    return v.report.cycles.ok > okBefore ? v : null;
  });
  assert.notEqual(resumed.report.state, 'stopped', 'a resumed relationship is not reported as stopped');
  assert.equal(resumed.report.lastError, null);
  assert.match(ss('host', 'replication', 'disable', 'vm1', '--state-dir', 'a'), /disabled/);
  assert.match(ss('host', 'replication', 'list', '--state-dir', 'a'), /replicates nothing/);
  assert.match(
    ss('host', 'replica', 'points', 'vm1', '--state-dir', 'b'),
    /POINT/,
    'the replica keeps its points',
  );
  assert.match(ss('host', 'replica', 'delete', 'vm1', '--state-dir', 'b'), /replica of vm1 deleted/);
  assert.match(ss('host', 'replica', 'list', '--state-dir', 'b'), /keeps no replicas/);
  assert.match(ss('host', 'replica', 'delete', 'vm1', '--state-dir', 'b'), /no replica of vm1 here/);
});

/** README steps 6-8, on a second VM of the same hosts (vm1 keeps replicating for the steps after). */
async function vmsAndFailover(replicationPort: string): Promise<void> {
  const nicPort = String(await freePort());
  ss('host', 'disk', 'create', 'vm2-d0', '--size', '16M', '--state-dir', 'a');
  ss(
    'host',
    'vm',
    'create',
    'vm2',
    '--disks',
    'vm2-d0',
    '--nic',
    `nic0:prod:127.0.0.1:${nicPort}`,
    '--rate',
    '100',
    '--state-dir',
    'a',
  );
  assert.match(ss('host', 'vm', 'start', 'vm2', '--state-dir', 'a'), /VM vm2 is running/);
  assert.match(ss('host', 'vm', 'list', '--state-dir', 'a'), /vm2\s+running/);
  const state = (await (await fetch(`http://127.0.0.1:${nicPort}/state`)).json()) as { state: string };
  assert.equal(state.state, 'running', 'the guest answers on its NIC');
  ss(
    'host',
    'replication',
    'enable',
    'vm2',
    '--disks',
    'vm2-d0',
    '--replica',
    'host-b',
    '--address',
    '127.0.0.1',
    '--port',
    replicationPort,
    '--copy-frequency',
    'continuous',
    '--state-dir',
    'a',
  );
  await until(
    'a point of vm2',
    () => json<ReplicaView>('host', 'replica', 'points', 'vm2', '--state-dir', 'b').latestPoint,
  );

  // 7. test failover and cleanup
  assert.match(
    ss('host', 'failover', 'test', 'vm2', '--state-dir', 'b'),
    /test VM vm2-test runs from point rp-\d+/,
  );
  assert.match(ss('host', 'vm', 'list', '--state-dir', 'b'), /vm2-test\s+running/);
  assert.match(ss('host', 'failover', 'test-cleanup', 'vm2', '--state-dir', 'b'), /cleaned up/);
  assert.match(ss('host', 'vm', 'list', '--state-dir', 'b'), /no VMs/);

  // 8. unplanned failover: refused while the primary answers, then the primary is gone
  const refused = spawnSync(process.execPath, [bin, 'host', 'failover', 'start', 'vm2', '--state-dir', 'b'], {
    cwd: dir,
    encoding: 'utf8',
  });
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /still runs/);
  ss('host', 'vm', 'power-off', 'vm2', '--state-dir', 'a');
  assert.match(
    ss('host', 'failover', 'start', 'vm2', '--state-dir', 'b'),
    /vm2 failed over to point rp-\d+ \(epoch 1\)/,
  );
  const points = json<ReplicaView>('host', 'replica', 'points', 'vm2', '--state-dir', 'b').points;
  const older = points[0];
  assert.ok(older);
  assert.match(
    ss('host', 'failover', 'change-point', 'vm2', older.pointId, '--state-dir', 'b'),
    new RegExp(`point ${older.pointId}`),
  );
  assert.match(ss('host', 'failover', 'commit', 'vm2', '--state-dir', 'b'), /committed/);
  assert.match(ss('host', 'disk', 'list', '--state-dir', 'b'), /vm2-d0/);
  assert.match(ss('host', 'vm', 'list', '--state-dir', 'b'), /vm2\s+running/);
  await until('host-a fenced for vm2', () =>
    json<RelationshipView>('host', 'replication', 'show', 'vm2', '--state-dir', 'a').definition.state ===
    'fenced'
      ? true
      : null,
  );
  const restart = spawnSync(process.execPath, [bin, 'host', 'vm', 'start', 'vm2', '--state-dir', 'a'], {
    cwd: dir,
    encoding: 'utf8',
  });
  assert.match(restart.stderr, /was failed over to host-b/, 'the old primary refuses to start the VM');
  ss('host', 'vm', 'power-off', 'vm2', '--state-dir', 'b');
  assert.match(ss('host', 'replication', 'disable', 'vm2', '--state-dir', 'a'), /disabled/);
}

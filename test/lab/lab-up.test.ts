/**
 * `npm start` runs `secondsite lab up`: this runs it as a user would (a real process), for a few
 * seconds, and checks from its JSON status that the guest VM runs and writes, its recovery points advance on the
 * replica host, the relationship is healthy, a test failover boots the guest from a point on host-b
 * (its log validates), and both management servers are registered with the vault and connected; then
 * that it stops cleanly by itself.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { ControlClient } from '../../src/control-api/control-client.js';
import type { FailoverView } from '../../src/host/failover/failover-service.js';
import type { VmStatus } from '../../src/host/vm/vm-driver.js';
import type { LabSnapshot } from '../../src/lab/lab-up.js';
import { waitFor } from '../host/fixtures.js';

const bin = new URL('../../bin/secondsite.mjs', import.meta.url).pathname;

test('lab up: the VM writes, points advance on host-b, health is Normal, then it stops', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ss-lab-'));
  try {
    const child = spawn(
      process.execPath,
      [
        bin,
        'lab',
        'up',
        '--dir',
        dir,
        '--duration',
        '20',
        '--copy-frequency',
        'continuous',
        '--output',
        'json',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const events: Array<{ event: string } & Partial<LabSnapshot>> = [];
    createInterface({ input: child.stdout }).on('line', (line) =>
      events.push(JSON.parse(line) as { event: string }),
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    // while it runs: a test failover on host-b boots the guest from a point (its log validates)
    const b = new ControlClient(join(dir, 'host-b', 'agent.sock'));
    // the lab starts three PostgreSQL servers (vault, two management servers): slow on a loaded machine
    await waitFor(
      'a recovery point in the lab',
      () => Promise.resolve(events.some((e) => e.event === 'status' && e.replica?.latestPoint)),
      120_000,
    );
    const tf = await b.post<FailoverView>('/v1/replicas/vm1/test-failover', {});
    assert.equal(tf.state, 'test-failover');
    const testVm = await waitFor('the test VM', async () => {
      const s = await b.get<VmStatus>('/v1/vms/vm1-test');
      return s.state === 'running' && s.guest ? s : null;
    });
    assert.ok((testVm.guest?.bootSeq ?? 0) > 0, 'the lab guest log validates in a test failover');
    await b.delete('/v1/replicas/vm1/test-failover');
    const code = await exited;
    assert.equal(code, 0, stderr);
    assert.equal(events[0]?.event, 'starting');
    assert.equal(events.at(-1)?.event, 'stopped');
    const status = events.filter((e) => e.event === 'status');
    assert.ok(status.length >= 5, `status lines: ${status.length}`);
    const last = status.at(-1)!;
    assert.ok((last.workload?.ops ?? 0) > 100, 'the VM wrote');
    assert.equal(last.vm?.state, 'running', 'the guest VM runs');
    assert.ok((last.vm?.guest?.lastDurableSeq ?? 0) > 100, 'the guest keeps its record log');
    const firstSeq = status.find((s) => s.replica?.latestPoint)?.replica?.latestPoint?.sequence ?? 0;
    const lastSeq = last.replica?.latestPoint?.sequence ?? 0;
    assert.ok(lastSeq >= firstSeq + 3, `points advanced from #${firstSeq} to #${lastSeq}`);
    assert.equal(last.relationship?.health.level, 'Normal', JSON.stringify(last.relationship?.health));
    assert.ok((last.relationship?.lagMs ?? Infinity) < 10_000, `lag ${last.relationship?.lagMs}`);
    // the control plane: a vault with both sites' management servers registered and connected
    assert.match(last.controlPlane?.url ?? '', /^https:\/\/localhost:\d+$/);
    assert.deepEqual(
      last.controlPlane?.managementServers.map((m) => [m.name, m.connectionState]),
      [
        ['vmm-site-a', 'connected'],
        ['vmm-site-b', 'connected'],
      ],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/**
 * Checks shared by the failover crash tests (reverse-crash, planned-crash): a monitor that would see
 * the VM's guest alive on both hosts at once (two writable primaries), and a check that nothing
 * half-done is left on either host after a case.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { HostStatus } from '../../src/host/agent/host-agent.js';
import type { VmStatus } from '../../src/host/vm/vm-driver.js';
import type { HostLab } from '../../src/lab/host-lab.js';
import { processAlive } from './failover-fixtures.js';

export const HOSTS = ['host-a', 'host-b'] as const;
export type HostId = (typeof HOSTS)[number];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const running = (v: VmStatus | undefined): v is VmStatus =>
  v !== undefined && v.state !== 'off' && v.state !== 'failed';

/**
 * Samples both hosts every 100 ms: the VM's guest (pid from the agent's VM list while the agent is
 * up, the last pid seen while it is down) must never be alive on both at once.
 */
export class TwoPrimariesMonitor {
  private readonly lastPid = new Map<HostId, number | null>();
  readonly violations: string[] = [];
  /** Samples that found the guest alive, per host (the monitor must see it run on both in a chain). */
  readonly seenRunning = { 'host-a': 0, 'host-b': 0 };
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly lab: HostLab,
    private readonly vmId: string,
  ) {
    this.loop = this.run();
  }

  private async sample(h: HostId): Promise<number | null> {
    if (this.lab.host(h).process) {
      try {
        const { vms } = await this.lab.host(h).client.get<{ vms: VmStatus[] }>('/v1/vms');
        const v = vms.find((x) => x.vmId === this.vmId);
        this.lastPid.set(h, running(v) && v.pid !== null ? v.pid : null);
      } catch {
        // the agent is going down or starting: judge by the last pid seen
      }
    }
    const pid = this.lastPid.get(h) ?? null;
    return pid !== null && processAlive(pid) ? pid : null;
  }

  /** One sample of both hosts now (also run by the loop). */
  async check(where: string): Promise<void> {
    const [a, b] = [await this.sample('host-a'), await this.sample('host-b')];
    if (a !== null) this.seenRunning['host-a']++;
    if (b !== null) this.seenRunning['host-b']++;
    if (a !== null && b !== null)
      this.violations.push(
        `${where}: the guest of ${this.vmId} runs on host-a (pid ${a}) and host-b (pid ${b})`,
      );
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      await this.check('monitor');
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

/** NBD export names an agent serves (nbdinfo --list on its socket). */
export async function nbdExports(lab: HostLab, hostId: HostId): Promise<string[]> {
  const { stdout } = await promisify(execFile)('nbdinfo', [
    '--list',
    '--json',
    `nbd+unix:///?socket=${lab.host(hostId).nbdSocket}`,
  ]);
  const list = JSON.parse(stdout) as { exports: Array<{ 'export-name': string }> };
  return list.exports.map((e) => e['export-name']).sort();
}

/**
 * Nothing half-done on either host: no seeding or promotion intent, no `.promoted` directory, no view
 * without a failover, and every NBD export is a disk, a failover's export or an exported point.
 */
export async function checkClean(lab: HostLab, where: string): Promise<void> {
  for (const h of HOSTS) {
    const dir = join(lab.host(h).stateDir, 'replicas');
    const status = await lab.host(h).client.get<HostStatus>('/v1/status');
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      assert.ok(!name.endsWith('.promoted'), `${where}: ${h} has ${name} left`);
      const files = await readdir(join(dir, name));
      assert.ok(!files.includes('seed.meta'), `${where}: ${h} has a seed intent left in ${name}`);
      assert.ok(!files.includes('promote.meta'), `${where}: ${h} has a promotion intent left in ${name}`);
      const views = await readdir(join(dir, name, 'views')).catch(() => [] as string[]);
      const fo = status.failovers.find((f) => f.relationshipId === name);
      const wanted = fo?.state === 'failover-pending-commit' ? [`failover-${fo.vmId}`] : [];
      assert.deepEqual(views, wanted, `${where}: ${h} keeps views of ${name} no failover needs`);
    }
    const expected = new Set<string>([
      ...status.disks.map((d) => d.diskId),
      ...status.failovers.flatMap((f) => (f.state === 'failover-pending-commit' ? f.exports : [])),
      ...status.replicas.flatMap((r) => r.exports),
    ]);
    const orphans = (await nbdExports(lab, h)).filter((e) => !expected.has(e));
    assert.deepEqual(orphans, [], `${where}: ${h} serves exports nothing refers to`);
  }
}

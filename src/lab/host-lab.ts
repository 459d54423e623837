/**
 * A host-level lab: a CA and host agents (real `secondsite host serve` processes) on this machine, one
 * per site, each with its own state folder, certificate and replication port; the replica hosts
 * authorize the primaries. `npm start` runs one, and the multi-process tests use the same code so what
 * they prove is what a user runs.
 *
 * Agents can be killed (SIGKILL, an unclean stop) and restarted on the same state folder.
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SecondsiteError } from '../domain/errors.js';
import { ControlClient } from '../control-api/control-client.js';
import type { HostStatus } from '../host/agent/host-agent.js';
import type { HostConfigInput } from '../host/agent/host-config.js';
import { caPaths, exists, initCa } from '../pki/ca.js';
import { issueHostCert } from '../pki/csr.js';
import { spawnServe, stopServe } from './serve-process.js';

export interface LabHostSpec {
  hostId: string;
  /** Primary hosts allowed to replicate into this host's 'default' storage location. */
  authorize?: string[];
  /** The host's site: each site has its own CA (`<dir>/ca-<site>`); default: one lab CA (`<dir>/ca`). */
  site?: string;
}

export interface LabHost {
  readonly hostId: string;
  readonly stateDir: string;
  readonly client: ControlClient;
  readonly nbdSocket: string;
  /** The replication port of the running agent (fixed across restarts). */
  replicationPort: number;
  process: ChildProcess | null;
  readonly logPath: string;
}

export class HostLab {
  private readonly hosts = new Map<string, LabHost>();
  private readonly logs = new Map<string, WriteStream>();

  private constructor(readonly dir: string) {}

  /** Creates the CA and the hosts' state folders and certificates, and starts every agent. */
  static async create(
    dir: string,
    specs: LabHostSpec[],
    options: { logLevel?: string } = {},
  ): Promise<HostLab> {
    const lab = new HostLab(dir);
    await mkdir(join(dir, 'logs'), { recursive: true });
    for (const spec of specs) {
      const caDir = lab.caDir(spec.site);
      if (!(await exists(caPaths(caDir).keyPath)))
        await initCa(caDir, { name: spec.site ? `secondsite lab CA of ${spec.site}` : 'secondsite lab CA' });
      const stateDir = join(dir, spec.hostId);
      await mkdir(stateDir, { recursive: true, mode: 0o700 });
      const port = await freePort();
      const config: Omit<HostConfigInput, 'stateDir'> = {
        hostId: spec.hostId,
        replication: {
          listenHost: '127.0.0.1',
          listenPort: port,
          storageLocations: { default: 'replicas' },
          authorization: (spec.authorize ?? []).map((primaryHostId) => ({
            primaryHostId,
            storageLocation: 'default',
            trustGroup: 'default',
          })),
        },
      };
      await writeFile(join(stateDir, 'host.json'), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
      await issueHostCert({ caDir, name: spec.hostId, outDir: join(stateDir, 'pki') });
      lab.hosts.set(spec.hostId, {
        hostId: spec.hostId,
        stateDir,
        client: new ControlClient(join(stateDir, 'agent.sock')),
        nbdSocket: join(stateDir, 'nbd.sock'),
        replicationPort: port,
        process: null,
        logPath: join(dir, 'logs', `${spec.hostId}.log`),
      });
    }
    for (const spec of specs) await lab.start(spec.hostId, options.logLevel);
    return lab;
  }

  /** The CA folder of a site (see LabHostSpec.site). */
  caDir(site?: string): string {
    return join(this.dir, site ? `ca-${site}` : 'ca');
  }

  host(hostId: string): LabHost {
    const h = this.hosts.get(hostId);
    if (!h) throw new SecondsiteError('SECONDSITE_ERR_NOT_FOUND', `no lab host '${hostId}'`);
    return h;
  }

  list(): LabHost[] {
    return [...this.hosts.values()];
  }

  /** Starts (or restarts) a host's agent and waits for its ready line. */
  async start(hostId: string, logLevel = 'info'): Promise<void> {
    const h = this.host(hostId);
    if (h.process)
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_STATE', `lab host ${hostId} is already running`);
    let log = this.logs.get(hostId);
    if (!log) {
      log = createWriteStream(h.logPath, { flags: 'a' });
      this.logs.set(hostId, log);
    }
    // A larger initial heap spares the agent most full GCs under streaming writes (its 64 KiB socket
    // reads fill a small old generation quickly); run `secondsite host serve` the same way in services.
    const { child } = await spawnServe(
      ['--initial-heap-size=64'],
      ['host', 'serve', '--state-dir', h.stateDir, '--log-level', logLevel],
      log,
      `agent ${hostId}`,
      h.logPath,
    );
    h.process = child;
    child.once('exit', () => {
      if (h.process === child) h.process = null;
    });
  }

  /** Kills a host's agent with SIGKILL (an unclean stop) and waits for it to be gone. */
  async kill(hostId: string): Promise<void> {
    await this.signal(hostId, 'SIGKILL');
  }

  /**
   * Pulls the plug on a whole host: SIGKILL to its agent and to every guest (VM) process it runs, as
   * when the machine dies. Guests run in their own process groups (they outlive an agent restart).
   */
  async killWithGuests(hostId: string): Promise<number[]> {
    const pids = await this.guestPids(hostId);
    await this.kill(hostId);
    for (const pid of pids) killGroup(pid, 'SIGKILL');
    return pids;
  }

  /** Pids of the running guests of a host (asked from its agent; [] when the agent is down). */
  async guestPids(hostId: string): Promise<number[]> {
    if (!this.host(hostId).process) return [];
    const { vms } = await this.host(hostId).client.get<{ vms: Array<{ pid: number | null }> }>('/v1/vms');
    return vms.map((v) => v.pid).filter((p): p is number => p !== null);
  }

  /** Stops a host's agent cleanly (SIGTERM). */
  async stopHost(hostId: string): Promise<void> {
    await this.signal(hostId, 'SIGTERM');
  }

  async status(hostId: string): Promise<HostStatus> {
    return this.host(hostId).client.get<HostStatus>('/v1/status');
  }

  /** Powers off every VM, then stops every agent cleanly. */
  async stop(): Promise<void> {
    for (const h of this.hosts.values()) {
      const pids = await this.guestPids(h.hostId).catch(() => []);
      for (const pid of pids) killGroup(pid, 'SIGKILL');
    }
    for (const h of this.hosts.values()) await this.signal(h.hostId, 'SIGTERM');
    for (const l of this.logs.values()) await new Promise<void>((r) => l.end(() => r()));
    this.logs.clear();
  }

  private async signal(hostId: string, sig: NodeJS.Signals): Promise<void> {
    const child = this.host(hostId).process;
    if (child) await stopServe(child, sig);
  }
}

/** Signals a process group (a guest and anything it started); a gone group is not an error. */
function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

/** A TCP port that was free a moment ago on loopback (the agent binds it right after). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

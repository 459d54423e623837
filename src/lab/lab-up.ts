/**
 * `secondsite lab up` (what `npm start` runs): the whole system of DESIGN.md on this machine, as real
 * processes, ready to protect. A vault; management servers (two, vmm-site-a and vmm-site-b, or one with
 * `--single-server`), each with its own embedded PostgreSQL, registered with registration keys; host
 * agents enrolled into them with enrolment keys; each server's fabric described (host groups, a primary
 * cloud `prod` with VM network `net-prod`, a recovery cloud `dr` with `net-dr`); guest VMs `web` and
 * `db` running on the primary cloud's hosts, each guest keeping a checksummed record log on its boot
 * disk, and a block workload writing db's data disk. Everything reaches the vault's inventory; nothing
 * is protected: the lab prints the commands of the walkthrough (policy, pairing, network mapping,
 * enable replication) and then live status, read from the vault, until Ctrl-C (or --duration).
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { NbdClient } from '../guest/nbd-client.js';
import { BLOCK_SIZE_BYTES } from '../testing/workload/block-format.js';
import { WorkloadGenerator } from '../testing/workload/workload-generator.js';
import { ControlPlaneLab } from './control-plane-lab.js';
import { HostLab } from './host-lab.js';
import { describeFabric, enrolHosts, startVms, waitForInventory } from './lab-fabric.js';
import { renderSnapshot, takeSnapshot, type LabSnapshot } from './lab-status.js';
import { labHosts, recoveryHostIds, SINGLE_SERVER, TWO_SERVERS, type LabTopology } from './lab-topology.js';
import { BIN } from './serve-process.js';

export type { LabSnapshot } from './lab-status.js';

export interface LabUpOptions {
  dir: string;
  /** One management server with both clouds instead of one per site. */
  singleServer: boolean;
  /** Stop after this many seconds once ready (default: run until SIGINT/SIGTERM). */
  durationSeconds?: number;
  /** The block workload's write operations per second on db's data disk (0: no workload). */
  writesPerSecond: number;
  json: boolean;
  out: (line: string) => void;
  /** Redraw the screen in place (a terminal) instead of printing lines. */
  tty: boolean;
}

/** What the lab prints (JSON: `{"event":"ready",...}`) once everything is in the vault's inventory. */
export interface LabReady {
  topology: LabTopology['kind'];
  url: string;
  vaultDir: string;
  adminTokenFile: string;
  managementServers: string[];
  /** The walkthrough, to run with SECONDSITE_VAULT_DIR=vaultDir (each without the `secondsite` word). */
  walkthrough: string[][];
  startupSeconds: number;
}

/**
 * As root, each embedded PostgreSQL runs as its own system user, who must be able to traverse down
 * to the lab's folder; a lab under a private folder (e.g. a checkout in /root) moves to the temp dir.
 */
function labDirFor(requested: string): { dir: string; moved: boolean } {
  const dir = resolve(requested);
  if (process.getuid?.() !== 0) return { dir, moved: false };
  for (let d = dirname(dir); d !== dirname(d); d = dirname(d)) {
    if (existsSync(d) && (statSync(d).mode & 0o001) === 0)
      return { dir: join(tmpdir(), 'secondsite-lab'), moved: true };
  }
  return { dir, moved: false };
}

/** The seed's steps for this topology: policy, pairing, network mapping, enable, then look. */
export function walkthroughFor(t: LabTopology): string[][] {
  const firstVm = t.vms[0]?.vmId ?? 'web';
  return [
    ['vault', 'policy', 'create', 'gold', '--copy-frequency', '30s', '--retention-hours', '24'],
    [
      'vault',
      'pairing',
      'create',
      '--primary-cloud',
      t.primary.cloud,
      '--recovery-cloud',
      t.recovery.cloud,
      '--policy',
      'gold',
    ],
    ['vault', 'network-mapping', 'create', '--source', t.primary.network, '--target', t.recovery.network],
    ['vault', 'item', 'enable', '--cloud', t.primary.cloud, '--wait'],
    ['vault', 'item', 'list'],
    ['vault', 'item', 'show', firstVm],
  ];
}

const STARTUP_TIMEOUT_MS = 180_000;

export async function labUp(o: LabUpOptions): Promise<number> {
  const t = o.singleServer ? SINGLE_SERVER : TWO_SERVERS;
  const { dir, moved } = labDirFor(o.dir);
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'logs'), { recursive: true, mode: 0o755 });
  const hostIds = labHosts(t).map((h) => h.hostId);
  o.out(
    o.json
      ? JSON.stringify({ event: 'starting', dir, topology: t.kind })
      : `secondsite lab: starting a vault, ${t.managementServers.length === 1 ? 'one management server' : `${t.managementServers.length} management servers`} and ${hostIds.length} host agents in ${dir}${moved ? ` (not ${resolve(o.dir)}: as root, PostgreSQL's own user must be able to reach the folder)` : ''}; this takes a minute ...`,
  );
  const startedMs = Date.now();
  const stopSignal = new AbortController();
  const onSignal = (): void => stopSignal.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const clients: NbdClient[] = [];
  let gen: WorkloadGenerator | null = null;
  let running: Promise<unknown> = Promise.resolve();
  const [hostsStarted, controlStarted] = await Promise.allSettled([
    HostLab.create(
      dir,
      hostIds.map((hostId) => ({ hostId })),
    ),
    ControlPlaneLab.start(
      dir,
      t.managementServers.map((m) => ({ managementServerName: m.name, dataDir: join(dir, m.dirName) })),
      { hostPollIntervalSeconds: 2 },
    ),
  ]);
  const hosts = hostsStarted.status === 'fulfilled' ? hostsStarted.value : null;
  const control = controlStarted.status === 'fulfilled' ? controlStarted.value : null;
  try {
    if (!hosts || !control) {
      const failed = hostsStarted.status === 'rejected' ? hostsStarted : controlStarted;
      throw failed.status === 'rejected' ? failed.reason : new Error('the lab did not start');
    }
    const step = async (what: string, f: () => Promise<void>): Promise<void> => {
      if (stopSignal.signal.aborted) return; // Ctrl-C while starting: stop without the remaining steps
      const atSeconds = Math.round((Date.now() - startedMs) / 1000);
      o.out(o.json ? JSON.stringify({ event: 'step', what, atSeconds }) : `  t+${atSeconds}s ${what}`);
      await f();
    };
    await step('enrolling the hosts into their management servers', () => enrolHosts(dir, t, hosts, control));
    await step('describing the fabric: host groups, clouds, VM networks', () => describeFabric(t, control));
    await step('starting the guest VMs', () => startVms(t, hosts));
    if (stopSignal.signal.aborted) return 0;
    const workloadVm = t.vms.find((v) => v.workloadDiskId !== undefined);
    const workloadDisk = workloadVm?.disks.find((d) => d.diskId === workloadVm.workloadDiskId);
    if (workloadVm && workloadDisk && o.writesPerSecond > 0) {
      const client = await NbdClient.connect({
        socketPath: hosts.host(workloadVm.hostId).nbdSocket,
        exportName: workloadDisk.diskId,
      });
      clients.push(client);
      gen = new WorkloadGenerator({
        seed: Date.now() >>> 0,
        disks: [{ diskId: 0, sizeBytes: workloadDisk.sizeBytes, target: client }],
        opsPerSecond: o.writesPerSecond,
        signal: stopSignal.signal,
      });
      running = gen.run();
    }
    await step("waiting for the vault's inventory (hosts, clouds, networks, VMs)", () =>
      waitForInventory(t, control, STARTUP_TIMEOUT_MS, stopSignal.signal),
    );
    if (stopSignal.signal.aborted) return 0;
    const ready: LabReady = {
      topology: t.kind,
      url: control.url,
      vaultDir: control.vaultDir,
      adminTokenFile: join(control.vaultDir, 'admin.token'),
      managementServers: t.managementServers.map((m) => m.name),
      walkthrough: walkthroughFor(t),
      startupSeconds: Math.round((Date.now() - startedMs) / 1000),
    };
    const introText = intro(dir, t, ready);
    o.out(o.json ? JSON.stringify({ event: 'ready', ...ready }) : introText);

    const readyMs = Date.now();
    const deadline = o.durationSeconds !== undefined ? readyMs + o.durationSeconds * 1000 : Infinity;
    let lastPrint = 0;
    const workloadOf = (): LabSnapshot['workload'] =>
      gen && workloadDisk
        ? {
            diskId: workloadDisk.diskId,
            ops: gen.history.ops.length,
            bytesWritten: countWrittenBytes(gen.history.ops),
          }
        : null;
    while (!stopSignal.signal.aborted && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      if (Date.now() - lastPrint < 1000) continue;
      lastPrint = Date.now();
      const snap = await takeSnapshot(t, hosts, control, workloadOf(), readyMs);
      if (o.json) o.out(JSON.stringify({ event: 'status', ...snap }));
      else if (o.tty) o.out(`\x1b[H\x1b[2J${introText}\n${renderSnapshot(snap)}`);
      else if (snap.elapsedSeconds % 5 === 0) o.out(renderSnapshot(snap));
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    stopSignal.abort();
    gen?.stop();
    await running.catch(() => undefined);
    for (const c of clients) await c.close().catch(() => undefined);
    await control?.stop();
    await hosts?.stop();
    o.out(
      o.json
        ? JSON.stringify({ event: 'stopped', dir })
        : `secondsite lab: stopped; state and logs stay in ${dir}`,
    );
  }
}

const counted = new WeakMap<object, { upTo: number; bytes: number }>();

/** Bytes written by the workload so far, counted incrementally (the history only grows). */
function countWrittenBytes(ops: ReadonlyArray<{ kind: string; blocks: number }>): number {
  const c = counted.get(ops) ?? { upTo: 0, bytes: 0 };
  for (let i = c.upTo; i < ops.length; i++) {
    const op = ops[i];
    if (op?.kind === 'write') c.bytes += op.blocks * BLOCK_SIZE_BYTES;
  }
  c.upTo = ops.length;
  counted.set(ops, c);
  return c.bytes;
}

function intro(dir: string, t: LabTopology, r: LabReady): string {
  const servers = t.managementServers;
  const where = servers
    .map(
      (m) =>
        `  ${m.name}: ${m.hostGroups.map((g) => `host group ${g.name} (${g.hostIds.join(', ')})`).join(', ')}; ` +
        m.clouds.map((c) => `cloud ${c.name} with VM network ${c.network.name}`).join(', '),
    )
    .join('\n');
  const replicaHost = recoveryHostIds(t)[0];
  return [
    `secondsite lab (${t.kind === 'single-server' ? 'one management server' : 'two sites'}) is ready after ${r.startupSeconds} s:`,
    where,
    `  VMs ${t.vms.map((v) => `${v.vmId} (${v.hostId}, ${v.ipv4})`).join(', ')} run in cloud ${t.primary.cloud}: not protected yet`,
    `vault API: ${r.url}   admin token: ${r.adminTokenFile}`,
    `state and logs: ${dir}   (Ctrl-C stops)`,
    '',
    'Protect the VMs (from another terminal):',
    `  export SECONDSITE_VAULT_DIR=${r.vaultDir}`,
    `  alias secondsite='node ${BIN}'`,
    ...r.walkthrough.map((c) => `  secondsite ${c.join(' ')}`),
    'Then:',
    '  secondsite vault vm list; secondsite vault host list; secondsite vault job list',
    ...(replicaHost
      ? [`  secondsite host replica points ${t.vms[0]?.vmId ?? 'web'} --state-dir ${join(dir, replicaHost)}`]
      : []),
    '',
  ].join('\n');
}

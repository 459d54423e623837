/**
 * `secondsite lab up` (what `npm start` runs): a two-site system on this machine. The control plane:
 * a vault and one management server per site (vmm-site-a, vmm-site-b), real processes with their own
 * embedded PostgreSQL, registered with registration keys and sending heartbeats. The hosts: host-a
 * (site A, primary) runs VM vm1, a guest application that keeps a checksummed record log on its boot
 * disk vm1-d0 and answers over HTTP on its NIC, while a block workload writes its data disk vm1-d1,
 * both through the agent's NBD server; host-b (site B) keeps the replica, ready for a test failover or
 * a failover. The terminal shows live status: the management servers' connection, the guest's
 * records, the workload's writes, replication state, last recovery point, lag, bytes, throughput and
 * health. (The hosts are not yet enrolled in the management servers: the next step of issue 4.)
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { formatBytes } from '../domain/units.js';
import { NbdClient } from '../guest/nbd-client.js';
import type { RelationshipView } from '../host/agent/relationship-service.js';
import type { ReplicaView } from '../host/agent/replica-service.js';
import { BLOCK_SIZE_BYTES } from '../testing/workload/block-format.js';
import { WorkloadGenerator } from '../testing/workload/workload-generator.js';
import type { VmStatus } from '../host/vm/vm-driver.js';
import type { ManagementServerView } from '../protocol/vault-api/vault-api.schema.js';
import { ControlPlaneLab } from './control-plane-lab.js';
import { HostLab, freePort } from './host-lab.js';

export interface LabUpOptions {
  dir: string;
  /** Stop after this many seconds (default: run until SIGINT/SIGTERM). */
  durationSeconds?: number;
  copyFrequencySeconds: number;
  /** Workload write operations per second. */
  writesPerSecond: number;
  json: boolean;
  out: (line: string) => void;
  /** Redraw the screen in place (a terminal) instead of printing lines. */
  tty: boolean;
}

export interface LabSnapshot {
  elapsedSeconds: number;
  workload: { ops: number; bytesWritten: number; epochs: number };
  /** The guest VM on host-a: its power state and its own report (records written, durable). */
  vm: Pick<VmStatus, 'state' | 'guest' | 'nics'> | null;
  relationship: RelationshipView['report'] | null;
  replica: Pick<ReplicaView, 'points' | 'latestPoint' | 'lagMs' | 'epoch'> | null;
  /** The vault and the management servers registered with it. */
  controlPlane: {
    url: string;
    managementServers: Array<Pick<ManagementServerView, 'name' | 'connectionState' | 'lastHeartbeatAt'>>;
  } | null;
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

/** The boot disk holds the guest's log (kept small: the guest checks a blank disk whole at first boot). */
const DISKS = [
  { diskId: 'vm1-d0', sizeBytes: 64 * 1024 * 1024 },
  { diskId: 'vm1-d1', sizeBytes: 1024 * 1024 * 1024 },
];

export async function labUp(o: LabUpOptions): Promise<number> {
  const { dir, moved } = labDirFor(o.dir);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o755 });
  o.out(
    o.json
      ? JSON.stringify({ event: 'starting', dir })
      : `secondsite lab: starting a vault, two management servers and two host agents in ${dir}${moved ? ` (not ${resolve(o.dir)}: as root, PostgreSQL's own user must be able to reach the folder)` : ''} ...`,
  );
  const lab = await HostLab.create(dir, [{ hostId: 'host-a' }, { hostId: 'host-b', authorize: ['host-a'] }]);
  let control: ControlPlaneLab | null = null;
  const controlStarting = ControlPlaneLab.start(dir, [
    { site: 'a', managementServerName: 'vmm-site-a', dataDir: join(dir, 'manager-a') },
    { site: 'b', managementServerName: 'vmm-site-b', dataDir: join(dir, 'manager-b') },
  ]);
  controlStarting.catch(() => undefined); // awaited below
  const a = lab.host('host-a');
  const b = lab.host('host-b');
  const clients: NbdClient[] = [];
  let gen: WorkloadGenerator | null = null;
  let running: Promise<unknown> = Promise.resolve();
  const stopSignal = new AbortController();
  const onSignal = (): void => stopSignal.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (const d of DISKS) await a.client.post('/v1/disks', d);
    const guestPort = await freePort();
    await a.client.post('/v1/vms', {
      vmId: 'vm1',
      name: 'lab guest',
      diskIds: DISKS.map((d) => d.diskId),
      nics: [{ nicId: 'nic0', network: 'lab', ipv4: '127.0.0.1', port: guestPort }],
      guest: { recordsPerSec: 50 },
    });
    await a.client.post('/v1/vms/vm1/start');
    await a.client.post('/v1/relationships', {
      vmId: 'vm1',
      diskIds: DISKS.map((d) => d.diskId),
      replica: { hostId: 'host-b', address: '127.0.0.1', port: b.replicationPort },
      policy: { copyFrequencySeconds: o.copyFrequencySeconds },
    });
    // the block workload writes the data disk only: the boot disk is the guest's (its record log)
    const dataDisks = DISKS.slice(1);
    for (const d of dataDisks)
      clients.push(await NbdClient.connect({ socketPath: a.nbdSocket, exportName: d.diskId }));
    gen = new WorkloadGenerator({
      seed: Date.now() >>> 0,
      disks: dataDisks.map((d, i) => ({
        diskId: i,
        sizeBytes: d.sizeBytes,
        target: clients[i] as NbdClient,
      })),
      opsPerSecond: o.writesPerSecond,
      signal: stopSignal.signal,
    });
    running = gen.run();
    control = await controlStarting;
    const cp = control;
    if (!o.json) o.out(intro(dir, a.stateDir, b.stateDir, guestPort, cp));

    const startedMs = Date.now();
    const deadline = o.durationSeconds !== undefined ? startedMs + o.durationSeconds * 1000 : Infinity;
    let lastPrint = 0;
    while (!stopSignal.signal.aborted && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      if (Date.now() - lastPrint < 1000) continue;
      lastPrint = Date.now();
      const snap = await snapshot(lab, cp, gen, startedMs);
      if (o.json) o.out(JSON.stringify({ event: 'status', ...snap }));
      else if (o.tty)
        o.out(`\x1b[H\x1b[2J${intro(dir, a.stateDir, b.stateDir, guestPort, cp)}\n${render(snap)}`);
      else if (Math.round(snap.elapsedSeconds) % 5 === 0) o.out(render(snap));
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    gen?.stop();
    await running;
    for (const c of clients) await c.close().catch(() => undefined);
    control ??= await controlStarting.catch(() => null);
    await control?.stop();
    await lab.stop();
    o.out(
      o.json
        ? JSON.stringify({ event: 'stopped', dir })
        : `secondsite lab: stopped; state and logs stay in ${dir}`,
    );
  }
}

async function snapshot(
  lab: HostLab,
  control: ControlPlaneLab,
  gen: WorkloadGenerator,
  startedMs: number,
): Promise<LabSnapshot> {
  const servers = await control.managementServers().catch(() => null);
  const rel = await lab
    .host('host-a')
    .client.get<RelationshipView>('/v1/relationships/vm1')
    .catch(() => null);
  const rep = await lab
    .host('host-b')
    .client.get<ReplicaView>('/v1/replicas/vm1')
    .catch(() => null);
  const vm = await lab
    .host('host-a')
    .client.get<VmStatus>('/v1/vms/vm1')
    .catch(() => null);
  const ops = gen.history.ops;
  const bytesWritten = countWrittenBytes(ops);
  return {
    elapsedSeconds: Math.round((Date.now() - startedMs) / 1000),
    workload: { ops: ops.length, bytesWritten, epochs: ops.at(-1)?.epoch ?? 0 },
    vm: vm ? { state: vm.state, guest: vm.guest, nics: vm.nics } : null,
    relationship: rel?.report ?? null,
    replica: rep
      ? { points: rep.points, latestPoint: rep.latestPoint, lagMs: rep.lagMs, epoch: rep.epoch }
      : null,
    controlPlane: servers
      ? {
          url: control.url,
          managementServers: servers.map((m) => ({
            name: m.name,
            connectionState: m.connectionState,
            lastHeartbeatAt: m.lastHeartbeatAt,
          })),
        }
      : null,
  };
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

function intro(dir: string, aDir: string, bDir: string, guestPort: number, control: ControlPlaneLab): string {
  return [
    'secondsite lab: host-a (site A) replicates VM vm1 (disks vm1-d0, vm1-d1) to host-b (site B)',
    `vault API: ${control.url}   admin token: ${join(control.vaultDir, 'admin.token')}`,
    `management servers vmm-site-a and vmm-site-b are registered with the vault (heartbeats)`,
    `state and logs: ${dir}   (Ctrl-C stops)`,
    `try:  export SECONDSITE_VAULT_DIR=${control.vaultDir}`,
    `      node bin/secondsite.mjs vault management-server list`,
    `      curl http://127.0.0.1:${guestPort}/state          (the guest's own report)`,
    `      node bin/secondsite.mjs host status --state-dir ${aDir}`,
    `      node bin/secondsite.mjs host replica points vm1 --state-dir ${bDir}`,
    `      node bin/secondsite.mjs host failover test vm1 --state-dir ${bDir}`,
    `      node bin/secondsite.mjs host failover test-cleanup vm1 --state-dir ${bDir}`,
    `logs: ${join(dir, 'logs')}`,
    '',
  ].join('\n');
}

function render(s: LabSnapshot): string {
  const r = s.relationship;
  const rp = s.replica;
  const lag = (ms: number | null | undefined): string =>
    ms === null || ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`;
  const g = s.vm?.guest;
  const cp = s.controlPlane;
  return [
    cp
      ? `vault ${cp.url}: ${cp.managementServers.map((m) => `${m.name} ${m.connectionState}`).join(', ') || 'no management server yet'}`
      : 'vault: not answering',
    `t+${s.elapsedSeconds}s  VM vm1 ${s.vm?.state ?? '-'}: guest records ${g ? `${g.lastWrittenSeq} written, ${g.lastDurableSeq} durable` : '-'}; workload on vm1-d1 ${s.workload.ops} ops, ${formatBytes(s.workload.bytesWritten)}`,
    r
      ? `replication vm1 -> host-b: ${r.state}, last point ${r.lastPoint ? `#${r.lastPoint.sequence}` : '-'}, lag ${lag(r.lagMs)}, ` +
        `sent ${formatBytes(r.bytes.wireSent)} (${formatBytes(r.bytes.logicalSent)} logical), ` +
        `${formatBytes(r.throughputBytesPerSec)}/s, cycles ok ${r.cycles.ok} failed ${r.cycles.failed}, ` +
        `health ${r.health.level}${r.health.reasons.length ? ` (${r.health.reasons.join('; ')})` : ''}`
      : 'replication: starting',
    rp
      ? `replica on host-b: ${rp.points.length} retained point(s), latest ${rp.latestPoint ? `#${rp.latestPoint.sequence}` : '-'}, lag ${lag(rp.lagMs)}`
      : 'replica on host-b: waiting for the initial replication',
  ].join('\n');
}

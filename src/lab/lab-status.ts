/**
 * The lab's live status: read from the vault (management servers, hosts, VMs, replicated items: what a
 * user would see through `secondsite vault ...`) and from the primary hosts' agents (each guest's own
 * report of the records it wrote), plus the lab's block workload. One snapshot a second, drawn as a
 * few lines or printed as JSON.
 */
import { formatBytes } from '../domain/units.js';
import type { VmStatus } from '../host/vm/vm-driver.js';
import type { ManagementServerView } from '../protocol/vault-api/vault-api.schema.js';
import type { HostView, VmView } from '../protocol/vault-api/fabric.schema.js';
import type { ReplicatedItemView } from '../protocol/vault-api/replicated-items.schema.js';
import type { ControlPlaneLab } from './control-plane-lab.js';
import type { HostLab } from './host-lab.js';
import type { LabTopology } from './lab-topology.js';

export interface LabSnapshot {
  elapsedSeconds: number;
  /** The vault and the management servers registered with it (null: the vault did not answer). */
  controlPlane: {
    url: string;
    managementServers: Array<Pick<ManagementServerView, 'name' | 'connectionState' | 'lastHeartbeatAt'>>;
  } | null;
  /** Hosts as the vault's inventory has them. */
  hosts: Array<Pick<HostView, 'hostId' | 'managementServerName' | 'connectionState' | 'hostGroupName'>>;
  /** The lab's guest VMs: the vault's view (cloud, power) and the guest's own report from its host. */
  vms: Array<{
    vmId: string;
    hostId: string;
    cloudName: string | null;
    state: VmStatus['state'] | null;
    guest: { lastWrittenSeq: number; lastDurableSeq: number } | null;
    /** The guest's own report over HTTP on its NIC (`curl` it), while it runs. */
    guestUrl: string | null;
  }>;
  /** The block workload on a data disk. */
  workload: { diskId: string; ops: number; bytesWritten: number } | null;
  /** Replicated items in the vault (empty until the user protects the VMs). */
  items: Array<
    Pick<
      ReplicatedItemView,
      | 'vmName'
      | 'protectionState'
      | 'replicationHealth'
      | 'healthReasons'
      | 'primaryHostId'
      | 'replicaHostId'
      | 'lastPointId'
      | 'lastPointCutAt'
      | 'lagSeconds'
    >
  >;
}

export async function takeSnapshot(
  t: LabTopology,
  hosts: HostLab,
  cp: ControlPlaneLab,
  workload: LabSnapshot['workload'],
  startedMs: number,
): Promise<LabSnapshot> {
  const [servers, vaultHosts, vaultVms, items] = await Promise.all([
    cp.managementServers().catch(() => null),
    cp.admin
      .get<{ hosts: HostView[] }>('/v1/hosts?limit=1000')
      .then((r) => r.hosts)
      .catch(() => []),
    cp.admin
      .get<{ vms: VmView[] }>('/v1/vms?limit=1000')
      .then((r) => r.vms)
      .catch(() => []),
    cp.admin
      .get<{ items: ReplicatedItemView[] }>('/v1/replicated-items?limit=1000')
      .then((r) => r.items)
      .catch(() => []),
  ]);
  const vms = await Promise.all(
    t.vms.map(async (vm) => {
      const live = await hosts
        .host(vm.hostId)
        .client.get<VmStatus>(`/v1/vms/${vm.vmId}`)
        .catch(() => null);
      const inVault = vaultVms.find((v) => v.vmId === vm.vmId && v.hostId === vm.hostId);
      const nic = live?.nics[0];
      return {
        vmId: vm.vmId,
        hostId: vm.hostId,
        cloudName: inVault?.cloudName ?? null,
        state: live?.state ?? null,
        guest: live?.guest
          ? { lastWrittenSeq: live.guest.lastWrittenSeq, lastDurableSeq: live.guest.lastDurableSeq }
          : null,
        guestUrl: nic?.port ? `http://${nic.ipv4}:${nic.port}/state` : null,
      };
    }),
  );
  return {
    elapsedSeconds: Math.round((Date.now() - startedMs) / 1000),
    controlPlane: servers
      ? {
          url: cp.url,
          managementServers: servers.map((m) => ({
            name: m.name,
            connectionState: m.connectionState,
            lastHeartbeatAt: m.lastHeartbeatAt,
          })),
        }
      : null,
    hosts: vaultHosts.map((h) => ({
      hostId: h.hostId,
      managementServerName: h.managementServerName,
      connectionState: h.connectionState,
      hostGroupName: h.hostGroupName,
    })),
    vms,
    workload,
    items: items.map((i) => ({
      vmName: i.vmName,
      protectionState: i.protectionState,
      replicationHealth: i.replicationHealth,
      healthReasons: i.healthReasons,
      primaryHostId: i.primaryHostId,
      replicaHostId: i.replicaHostId,
      lastPointId: i.lastPointId,
      lastPointCutAt: i.lastPointCutAt,
      lagSeconds: i.lagSeconds,
    })),
  };
}

/** The snapshot as a few lines of text. */
export function renderSnapshot(s: LabSnapshot): string {
  const cp = s.controlPlane;
  const lines = [
    `t+${s.elapsedSeconds}s  ` +
      (cp
        ? `vault: ${cp.managementServers.map((m) => `${m.name} ${m.connectionState}`).join(', ') || 'no management server yet'}`
        : 'vault: not answering'),
    `hosts: ${s.hosts.map((h) => `${h.hostId} (${h.managementServerName}/${h.hostGroupName ?? '-'}) ${h.connectionState}`).join(', ') || '-'}`,
    ...s.vms.map(
      (v) =>
        `VM ${v.vmId} on ${v.hostId} in cloud ${v.cloudName ?? '-'}: ${v.state ?? '-'}, guest records ${v.guest ? `${v.guest.lastWrittenSeq} written, ${v.guest.lastDurableSeq} durable` : '-'}${v.guestUrl ? ` (${v.guestUrl})` : ''}`,
    ),
  ];
  if (s.workload)
    lines.push(
      `workload on ${s.workload.diskId}: ${s.workload.ops} ops, ${formatBytes(s.workload.bytesWritten)} written`,
    );
  if (s.items.length === 0) lines.push('replicated items: none yet (protect the VMs: the commands above)');
  for (const i of s.items)
    lines.push(
      `item ${i.vmName}: ${i.protectionState}, health ${i.replicationHealth}${i.healthReasons.length ? ` (${i.healthReasons.join('; ')})` : ''}, ` +
        `${i.primaryHostId} -> ${i.replicaHostId ?? '-'}, last point ${i.lastPointCutAt ?? '-'}, RPO ${i.lagSeconds === null ? '-' : `${i.lagSeconds.toFixed(1)} s`}`,
    );
  return lines.join('\n');
}

/**
 * Joins the lab's host agents and management servers the way the README tells a user to: each host
 * enrols into its management server with a single-use enrolment key (`manager host enroll-key`, `host
 * enroll`) and restarts to take its new identity; each management server describes its fabric (host
 * groups, clouds, VM networks: `manager host-group create`, `host move`, `cloud create`, `vm-network
 * create`, through its control socket as the CLI does); the guest VMs are made and started on the
 * primary cloud's hosts. Then it waits until the vault's inventory holds all of it, so a user can
 * protect the VMs at once. Nothing is protected here: that is the user's walkthrough.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SecondsiteError } from '../domain/errors.js';
import { enrollHost } from '../host/agent/manager-enrolment.js';
import type { EnrolmentKeyFile } from '../protocol/host-api/enrolment.schema.js';
import type { CloudView, HostView, VmNetworkView, VmView } from '../protocol/vault-api/fabric.schema.js';
import type { ControlPlaneLab } from './control-plane-lab.js';
import type { HostLab } from './host-lab.js';
import { labHosts, type LabTopology } from './lab-topology.js';

/** Enrols every host into its management server and restarts its agent with the new identity. */
export async function enrolHosts(
  dir: string,
  t: LabTopology,
  hosts: HostLab,
  cp: ControlPlaneLab,
): Promise<void> {
  // only the newest key of a management server is valid: one key, one host at a time per server
  await Promise.all(
    t.managementServers.map(async (m) => {
      const manager = cp.manager(m.name);
      for (const { hostId } of labHosts(t).filter((h) => h.managementServer === m)) {
        const key = await manager.control.post<EnrolmentKeyFile>('/v1/enrolment-keys', { expiresInHours: 1 });
        const keyFile = join(dir, `${hostId}.enrolment.key`);
        await writeFile(keyFile, `${JSON.stringify(key, null, 2)}\n`, { mode: 0o600 });
        await enrollHost({ stateDir: hosts.host(hostId).stateDir, keyFile });
      }
    }),
  );
  await Promise.all(
    labHosts(t).map(async ({ hostId }) => {
      await hosts.stopHost(hostId);
      await hosts.start(hostId);
    }),
  );
}

/** Host groups (with their hosts), clouds and VM networks on each management server. */
export async function describeFabric(t: LabTopology, cp: ControlPlaneLab): Promise<void> {
  await Promise.all(
    t.managementServers.map(async (m) => {
      const c = cp.manager(m.name).control;
      for (const g of m.hostGroups) {
        await c.post('/v1/host-groups', { name: g.name });
        for (const hostId of g.hostIds)
          await c.call('PUT', `/v1/hosts/${hostId}/host-group`, { hostGroup: g.name });
      }
      for (const cloud of m.clouds) {
        await c.post('/v1/clouds', { name: cloud.name, hostGroups: cloud.hostGroups });
        await c.post('/v1/vm-networks', {
          name: cloud.network.name,
          clouds: [cloud.name],
          subnets: [{ cidr: cloud.network.cidr }],
        });
      }
    }),
  );
}

/** Makes and starts the guest VMs on their hosts (guest application: 50 records a second). */
export async function startVms(t: LabTopology, hosts: HostLab): Promise<void> {
  for (const vm of t.vms) {
    const c = hosts.host(vm.hostId).client;
    for (const d of vm.disks) await c.post('/v1/disks', d);
    await c.post('/v1/vms', {
      vmId: vm.vmId,
      name: vm.vmId,
      diskIds: vm.disks.map((d) => d.diskId),
      nics: [{ nicId: 'nic0', network: vm.network, ipv4: vm.ipv4, port: 0 }],
      guest: { recordsPerSec: 50 },
    });
    await c.post(`/v1/vms/${vm.vmId}/start`, {});
  }
}

/**
 * Waits until the vault's inventory holds every host (connected, with its storage), every VM in its
 * cloud, and every cloud and VM network of the topology: what pairing and enabling need. Returns
 * early when `signal` aborts.
 */
export async function waitForInventory(
  t: LabTopology,
  cp: ControlPlaneLab,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let missing = 'the vault';
  while (!signal.aborted) {
    try {
      const m = await inventoryGaps(t, cp);
      if (m.length === 0) return;
      missing = m.join(', ');
    } catch (e) {
      missing = `the vault (${e instanceof Error ? e.message : String(e)})`;
    }
    if (Date.now() > deadline)
      throw new SecondsiteError(
        'SECONDSITE_ERR_TIMEOUT',
        `the vault's inventory still lacks ${missing} after ${timeoutMs / 1000} s; see the management servers' logs`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function inventoryGaps(t: LabTopology, cp: ControlPlaneLab): Promise<string[]> {
  const [hosts, vms, clouds, networks] = await Promise.all([
    cp.admin.get<{ hosts: HostView[] }>('/v1/hosts?limit=1000'),
    cp.admin.get<{ vms: VmView[] }>('/v1/vms?limit=1000'),
    cp.admin.get<{ clouds: CloudView[] }>('/v1/clouds?limit=1000'),
    cp.admin.get<{ vmNetworks: VmNetworkView[] }>('/v1/vm-networks?limit=1000'),
  ]);
  const gaps: string[] = [];
  for (const { hostId } of labHosts(t)) {
    const h = hosts.hosts.find((x) => x.hostId === hostId);
    if (!h || h.connectionState !== 'connected' || h.storageLocations.length === 0 || h.cloudIds.length === 0)
      gaps.push(`host ${hostId}`);
  }
  for (const vm of t.vms)
    if (
      !vms.vms.some(
        (v) => v.vmId === vm.vmId && v.cloudName === t.primary.cloud && v.nics.every((n) => n.vmNetworkId),
      )
    )
      gaps.push(`VM ${vm.vmId}`);
  for (const m of t.managementServers)
    for (const c of m.clouds) {
      if (
        !clouds.clouds.some(
          (x) => x.managementServerName === m.name && x.name === c.name && x.hostIds.length > 0,
        )
      )
        gaps.push(`cloud ${m.name}/${c.name}`);
      if (!networks.vmNetworks.some((x) => x.managementServerName === m.name && x.name === c.network.name))
        gaps.push(`VM network ${m.name}/${c.network.name}`);
    }
  return gaps;
}

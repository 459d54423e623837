/** What the control API shows of the fabric, computed from FabricRows (no I/O). */
import { ancestry, indexHostGroups, placeHostGroups } from '../../domain/fabric/placement.js';
import type { CloudView, HostGroupView, StorageLocationView, VmNetworkView } from './fabric-api.schema.js';
import type { CloudRow, FabricRows, VmNetworkRow } from './inventory-assembly.js';

export function hostGroupViews(rows: FabricRows): HostGroupView[] {
  const byId = indexHostGroups(rows.hostGroups);
  const placement = placeHostGroups(rows.hostGroups, rows.clouds);
  const cloudName = new Map(rows.clouds.map((c) => [c.cloudId, c.name]));
  return rows.hostGroups.map((g) => {
    const cloudId = placement.get(g.hostGroupId) ?? null;
    return {
      hostGroupId: g.hostGroupId,
      name: g.name,
      parent: g.parentHostGroupId === null ? null : (byId.get(g.parentHostGroupId)?.name ?? null),
      hosts: rows.hosts.filter((h) => h.hostGroupId === g.hostGroupId).map((h) => h.hostId),
      cloud: cloudId === null ? null : (cloudName.get(cloudId) ?? null),
    };
  });
}

export function cloudView(rows: FabricRows, c: CloudRow): CloudView {
  const byId = indexHostGroups(rows.hostGroups);
  const hosts = rows.hosts.filter(
    (h) => h.hostGroupId !== null && ancestry(h.hostGroupId, byId).some((id) => c.hostGroupIds.includes(id)),
  );
  const vms = hosts.flatMap((h) => h.inventory?.vms ?? []);
  return {
    cloudId: c.cloudId,
    name: c.name,
    hostGroups: c.hostGroupIds.map((id) => byId.get(id)?.name ?? id),
    capacity: c.capacity,
    vmNetworks: rows.vmNetworks.filter((n) => n.cloudIds.includes(c.cloudId)).map((n) => n.name),
    usage: {
      hosts: hosts.map((h) => h.hostId),
      vmCount: vms.length,
      storageBytes: vms.reduce((sum, vm) => sum + vm.disks.reduce((s, d) => s + d.sizeBytes, 0), 0),
    },
  };
}

export function vmNetworkView(rows: FabricRows, n: VmNetworkRow): VmNetworkView {
  const cloudName = new Map(rows.clouds.map((c) => [c.cloudId, c.name]));
  return {
    vmNetworkId: n.vmNetworkId,
    name: n.name,
    clouds: n.cloudIds.map((id) => cloudName.get(id) ?? id),
    subnets: n.subnets.map((s) => ({
      cidr: s.cidr,
      gateway: s.gateway,
      ipPools: s.ipPools.map((p) => ({ name: p.name, rangeStart: p.rangeStart, rangeEnd: p.rangeEnd })),
    })),
  };
}

/** Every storage location the hosts report, and every classified one (reported or not). */
export function storageLocationViews(rows: FabricRows): StorageLocationView[] {
  const views: StorageLocationView[] = [];
  for (const h of rows.hosts) {
    const classified = rows.storageClassifications.filter((c) => c.hostId === h.hostId);
    const reported = h.inventory?.storageLocations ?? [];
    for (const s of reported) {
      views.push({
        hostId: h.hostId,
        location: s.name,
        classification: classified.find((c) => c.location === s.name)?.classification ?? null,
        capacityBytes: s.capacityBytes,
        freeBytes: s.freeBytes,
      });
    }
    for (const c of classified) {
      if (!reported.some((s) => s.name === c.location)) {
        views.push({
          hostId: h.hostId,
          location: c.location,
          classification: c.classification,
          capacityBytes: null,
          freeBytes: null,
        });
      }
    }
  }
  return views;
}

/** VMs (as `vm on host`) whose NICs are on the VM network of this name. */
export function vmsOnNetwork(rows: FabricRows, networkName: string): string[] {
  return rows.hosts.flatMap((h) =>
    (h.inventory?.vms ?? [])
      .filter((vm) => vm.nics.some((nic) => nic.network === networkName))
      .map((vm) => `${vm.vmId} on ${h.hostId}`),
  );
}

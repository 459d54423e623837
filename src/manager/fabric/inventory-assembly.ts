/**
 * The management server's inventory as the vault gets it (protocol/vault-api/inventory.schema.ts),
 * assembled from what the fabric tables hold. No I/O: fabric-reader.ts reads the rows (in one
 * snapshot), this turns them into the document.
 *
 *   - a VM's cloud is the cloud covering its host's host group, nested groups included
 *     (domain/fabric/placement.ts);
 *   - a NIC's `network` (a VM network name on the host) becomes that VM network's id, null when the
 *     management server has no VM network of that name;
 *   - storage locations carry their classification ('' = unclassified);
 *   - a host that is not connected reports its VMs with power state 'unknown' (the last state read
 *     may be stale);
 *   - what cannot be sent as is (an id the contract refuses, e.g. a host id with dots) is left out and
 *     named in `problems`, so one bad entry never stops the whole inventory from reaching the vault.
 */
import { parseIpv4 } from '../../domain/fabric/ipv4.js';
import { placeHostGroups, type HostGroupNode } from '../../domain/fabric/placement.js';
import type { HostInventory } from '../../protocol/host-api/manager-peer.schema.js';
import {
  hostIdSchema,
  inventoryVmSchema,
  storageLocationSchema,
  type Inventory,
  type InventoryHost,
  type InventoryVm,
} from '../../protocol/vault-api/inventory.schema.js';
import type { CloudCapacity } from './fabric-api.schema.js';

export interface HostRow {
  readonly hostId: string;
  readonly hostGroupId: string | null;
  readonly connectionState: 'connected' | 'disconnected';
  readonly replicationAddress: string;
  readonly replicationPort: number;
  /** When the host's certificate ends (ISO 8601). */
  readonly certNotAfter: string;
  /** The host's last report; null before the first (or when it did not parse). */
  readonly inventory: HostInventory | null;
}

export interface CloudRow {
  readonly cloudId: string;
  readonly name: string;
  readonly hostGroupIds: string[];
  readonly capacity: CloudCapacity;
}

export interface VmNetworkRow {
  readonly vmNetworkId: string;
  readonly name: string;
  readonly cloudIds: string[];
  readonly subnets: {
    readonly subnetId: string;
    readonly cidr: string;
    readonly gateway: string | null;
    readonly ipPools: { ipPoolId: string; name: string; rangeStart: string; rangeEnd: string }[];
  }[];
}

export interface StorageClassificationRow {
  readonly hostId: string;
  readonly location: string;
  readonly classification: string;
}

/** Every fabric table, read at one point in time. */
export interface FabricRows {
  readonly inventoryVersion: number;
  readonly hostGroups: HostGroupNode[];
  readonly hosts: HostRow[];
  readonly clouds: CloudRow[];
  readonly vmNetworks: VmNetworkRow[];
  readonly storageClassifications: StorageClassificationRow[];
  /** The VM that runs this management server, when it runs on one of its hosts. */
  readonly managementVm: { readonly hostId: string; readonly vmId: string } | null;
}

const POWER_STATES = new Set<InventoryVm['powerState']>([
  'off',
  'starting',
  'running',
  'stopping',
  'quiesced',
  'failed',
]);

export function assembleInventory(
  rows: FabricRows,
  siteCaCertPem: string,
): { inventory: Inventory; problems: string[] } {
  const problems: string[] = [];
  const groupCloud = placeHostGroups(rows.hostGroups, rows.clouds);
  const networkByName = new Map(rows.vmNetworks.map((n) => [n.name, n.vmNetworkId]));
  const classification = new Map(
    rows.storageClassifications.map((c) => [`${c.hostId}\u0000${c.location}`, c.classification]),
  );

  const hosts: InventoryHost[] = [];
  const vms: InventoryVm[] = [];
  for (const h of rows.hosts) {
    if (!hostIdSchema.safeParse(h.hostId).success) {
      problems.push(`host ${h.hostId} left out: its id is not a lower-case DNS label`);
      continue;
    }
    const report = h.inventory;
    const storageLocations: InventoryHost['storageLocations'] = [];
    for (const s of report?.storageLocations ?? []) {
      const location = {
        name: s.name,
        storageClassification: classification.get(`${h.hostId}\u0000${s.name}`) ?? '',
        capacityBytes: s.capacityBytes,
        freeBytes: s.freeBytes,
      };
      if (storageLocationSchema.safeParse(location).success) storageLocations.push(location);
      else problems.push(`storage location '${s.name}' of host ${h.hostId} left out: not a valid name`);
    }
    hosts.push({
      hostId: h.hostId,
      hostGroupId: h.hostGroupId,
      connectionState: h.connectionState,
      replicationAddress: h.replicationAddress,
      replicationPort: h.replicationPort,
      memoryBytes: report?.memoryBytes ?? 0,
      cpuCount: report?.cpuCount ?? 0,
      storageLocations: storageLocations.slice(0, 64),
      certNotAfter: h.certNotAfter,
    });
    const cloudId = h.hostGroupId === null ? null : (groupCloud.get(h.hostGroupId) ?? null);
    for (const vm of report?.vms ?? []) {
      const state = vm.state as InventoryVm['powerState'];
      const entry: InventoryVm = {
        vmId: vm.vmId,
        name: vm.name.length > 0 ? vm.name.slice(0, 200) : vm.vmId,
        hostId: h.hostId,
        cloudId,
        powerState: h.connectionState === 'connected' && POWER_STATES.has(state) ? state : 'unknown',
        disks: vm.disks.map((d) => ({ diskId: d.diskId, sizeBytes: d.sizeBytes })),
        nics: vm.nics.map((n) => ({
          nicId: n.nicId,
          vmNetworkId: networkByName.get(n.network) ?? null,
          ipAddress: parseIpv4(n.ipv4) === null ? null : n.ipv4,
        })),
      };
      const check = inventoryVmSchema.safeParse(entry);
      if (check.success) vms.push(entry);
      else
        problems.push(
          `VM ${vm.vmId} on host ${h.hostId} left out: ${check.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
        );
    }
  }

  return {
    inventory: {
      inventoryVersion: rows.inventoryVersion,
      siteCaCertPem,
      managementVm: rows.managementVm === null ? null : { ...rows.managementVm },
      hostGroups: rows.hostGroups.map((g) => ({
        hostGroupId: g.hostGroupId,
        name: g.name,
        parentHostGroupId: g.parentHostGroupId,
      })),
      hosts,
      clouds: rows.clouds.map((c) => ({
        cloudId: c.cloudId,
        name: c.name,
        hostGroupIds: c.hostGroupIds,
        capacity: c.capacity,
      })),
      vmNetworks: rows.vmNetworks.map((n) => ({
        vmNetworkId: n.vmNetworkId,
        name: n.name,
        cloudIds: n.cloudIds,
        subnets: n.subnets.map((s) => ({
          cidr: s.cidr,
          gateway: s.gateway,
          ipPools: s.ipPools.map((p) => ({
            ipPoolId: p.ipPoolId,
            name: p.name,
            rangeStart: p.rangeStart,
            rangeEnd: p.rangeEnd,
          })),
        })),
      })),
      vms,
    },
    problems,
  };
}

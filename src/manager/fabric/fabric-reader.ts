/**
 * Reads every fabric table into FabricRows (inventory-assembly.ts). Callers that need one consistent
 * picture (the inventory and its version) call it inside a repeatable-read transaction.
 */
import type { Queryable } from '../../persistence/database.js';
import { hostInventorySchema } from '../../protocol/host-api/manager-peer.schema.js';
import type { FabricRows, HostRow } from './inventory-assembly.js';

const num = (v: string | number | null): number | null => (v === null ? null : Number(v));

export async function currentInventoryVersion(q: Queryable): Promise<number> {
  const r = await q.query<{ version: string }>('SELECT version FROM fabric_inventory_version');
  return Number(r.rows[0]?.version ?? 1);
}

export async function readFabric(q: Queryable): Promise<FabricRows> {
  const inventoryVersion = await currentInventoryVersion(q);
  const groups = await q.query<{ host_group_id: string; name: string; parent_host_group_id: string | null }>(
    'SELECT host_group_id, name, parent_host_group_id FROM host_groups ORDER BY name',
  );
  const hosts = await q.query<{
    host_id: string;
    host_group_id: string | null;
    connection_state: 'connected' | 'disconnected';
    replication_address: string;
    replication_port: number;
    cert_not_after: Date;
    host_inventory: unknown;
  }>(
    `SELECT host_id, host_group_id, connection_state, replication_address, replication_port, cert_not_after,
            host_inventory
     FROM hosts ORDER BY host_id`,
  );
  const clouds = await q.query<{
    cloud_id: string;
    name: string;
    max_vm_count: number | null;
    max_memory_bytes: string | null;
    max_storage_bytes: string | null;
    host_group_ids: string[];
  }>(
    `SELECT c.cloud_id, c.name, c.max_vm_count, c.max_memory_bytes, c.max_storage_bytes,
            coalesce(array_agg(g.host_group_id ORDER BY g.name) FILTER (WHERE g.host_group_id IS NOT NULL),
                     '{}') AS host_group_ids
     FROM clouds c
     LEFT JOIN cloud_host_groups chg ON chg.cloud_id = c.cloud_id
     LEFT JOIN host_groups g ON g.host_group_id = chg.host_group_id
     GROUP BY c.cloud_id ORDER BY c.name`,
  );
  const networks = await q.query<{ vm_network_id: string; name: string; cloud_ids: string[] }>(
    `SELECT n.vm_network_id, n.name,
            coalesce(array_agg(c.cloud_id ORDER BY c.name) FILTER (WHERE c.cloud_id IS NOT NULL), '{}') AS cloud_ids
     FROM vm_networks n
     LEFT JOIN cloud_vm_networks cv ON cv.vm_network_id = n.vm_network_id
     LEFT JOIN clouds c ON c.cloud_id = cv.cloud_id
     GROUP BY n.vm_network_id ORDER BY n.name`,
  );
  const subnets = await q.query<{
    subnet_id: string;
    vm_network_id: string;
    cidr: string;
    gateway: string | null;
  }>(
    'SELECT subnet_id, vm_network_id, cidr::text AS cidr, host(gateway) AS gateway FROM vm_network_subnets ORDER BY position',
  );
  const pools = await q.query<{
    ip_pool_id: string;
    subnet_id: string;
    name: string;
    range_start: string;
    range_end: string;
  }>(
    `SELECT ip_pool_id, subnet_id, name, host(range_start) AS range_start, host(range_end) AS range_end
     FROM vm_network_ip_pools ORDER BY range_start`,
  );
  const classifications = await q.query<{ host_id: string; location: string; classification: string }>(
    'SELECT host_id, location, classification FROM storage_classifications ORDER BY host_id, location',
  );

  return {
    inventoryVersion,
    managementVm:
      (
        await q.query<{ host_id: string; vm_id: string }>('SELECT host_id, vm_id FROM management_vm')
      ).rows.map((r) => ({ hostId: r.host_id, vmId: r.vm_id }))[0] ?? null,
    hostGroups: groups.rows.map((g) => ({
      hostGroupId: g.host_group_id,
      name: g.name,
      parentHostGroupId: g.parent_host_group_id,
    })),
    hosts: hosts.rows.map((h): HostRow => ({
      hostId: h.host_id,
      hostGroupId: h.host_group_id,
      connectionState: h.connection_state,
      replicationAddress: h.replication_address,
      replicationPort: h.replication_port,
      certNotAfter: h.cert_not_after.toISOString(),
      inventory: parseHostInventory(h.host_inventory),
    })),
    clouds: clouds.rows.map((c) => ({
      cloudId: c.cloud_id,
      name: c.name,
      hostGroupIds: c.host_group_ids,
      capacity: {
        vmCount: c.max_vm_count,
        memoryBytes: num(c.max_memory_bytes),
        storageBytes: num(c.max_storage_bytes),
      },
    })),
    vmNetworks: networks.rows.map((n) => ({
      vmNetworkId: n.vm_network_id,
      name: n.name,
      cloudIds: n.cloud_ids,
      subnets: subnets.rows
        .filter((s) => s.vm_network_id === n.vm_network_id)
        .map((s) => ({
          subnetId: s.subnet_id,
          cidr: s.cidr,
          gateway: s.gateway,
          ipPools: pools.rows
            .filter((p) => p.subnet_id === s.subnet_id)
            .map((p) => ({
              ipPoolId: p.ip_pool_id,
              name: p.name,
              rangeStart: p.range_start,
              rangeEnd: p.range_end,
            })),
        })),
    })),
    storageClassifications: classifications.rows.map((c) => ({
      hostId: c.host_id,
      location: c.location,
      classification: c.classification,
    })),
  };
}

function parseHostInventory(value: unknown): HostRow['inventory'] {
  if (value === null || value === undefined) return null;
  const r = hostInventorySchema.safeParse(value);
  return r.success ? r.data : null;
}

/**
 * Stores a provider's inventory (docs/design/vault.md section 6): `PUT
 * /v1/management-servers/:id/inventory` replaces that management server's fabric in one transaction
 * when the document's version is newer than the stored one; an older or equal version is answered
 * `applied: false` and changes nothing (a provider retrying, or two provider nodes racing, is normal).
 *
 * The document is checked first (inventory-check.ts): an inconsistent one is refused whole. The
 * management server's row is locked for the transaction, so two inventories of one server apply one
 * after the other and the newest wins. Hosts, host groups, VMs and the derived cloud hosts are
 * deleted and inserted again; clouds, VM networks and storage classifications are upserted, and the
 * ones no longer listed go through missing-objects.ts (kept as missing while a pairing or mapping uses
 * them). Every table is written with one statement from a JSON parameter (json_to_recordset), so a
 * big inventory costs a handful of round trips, not one per object.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Database, Queryable } from '../../persistence/database.js';
import { isForeignKeyViolation } from '../../persistence/postgres-errors.js';
import type { Inventory } from '../../protocol/vault-api/inventory.schema.js';
import { checkInventory, cloudHosts, storageClassifications } from './inventory-check.js';
import { reconcileHostAlerts } from '../monitoring/protection-alerts.js';
import { reconcileAbsent } from './missing-objects.js';

/** Inserts `rows` of management server `ms` (objects whose keys are the columns) with one statement. */
async function insertRows(
  tx: Queryable,
  ms: string,
  table: string,
  columns: Readonly<Record<string, string>>,
  rows: readonly object[],
  conflict = '',
): Promise<void> {
  if (rows.length === 0) return;
  const names = Object.keys(columns);
  const defs = names.map((c) => `${c} ${columns[c] ?? 'text'}`).join(', ');
  await tx.query(
    `INSERT INTO ${table} (management_server_id, ${names.join(', ')})
     SELECT $1, ${names.join(', ')} FROM json_to_recordset($2::json) AS x(${defs}) ${conflict}`,
    [ms, JSON.stringify(rows)],
  );
}

export class InventoryService {
  constructor(private readonly db: Database) {}

  /** Applies the inventory if newer; answers the version the vault now holds and whether it applied. */
  async apply(
    managementServerId: string,
    inv: Inventory,
  ): Promise<{ inventoryVersion: number; applied: boolean }> {
    checkInventory(inv);
    // A pairing or mapping created while this runs can make a delete here hit its foreign key
    // (23503): the transaction then runs again and sees the new reference.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction((tx) => this.applyIn(tx, managementServerId, inv));
      } catch (e) {
        if (!isForeignKeyViolation(e) || attempt >= 3) throw e;
      }
    }
  }

  private async applyIn(
    tx: Queryable,
    ms: string,
    inv: Inventory,
  ): Promise<{ inventoryVersion: number; applied: boolean }> {
    const r = await tx.query<{ inventory_version: string; name: string }>(
      'SELECT inventory_version, name FROM management_servers WHERE management_server_id = $1 FOR UPDATE',
      [ms],
    );
    const row = r.rows[0];
    if (!row) {
      throw new SecondsiteError('SECONDSITE_ERR_NOT_FOUND', `no management server ${ms}`, {
        managementServerId: ms,
      });
    }
    const stored = Number(row.inventory_version);
    if (inv.inventoryVersion <= stored) return { inventoryVersion: stored, applied: false };

    for (const table of [
      'fabric_vms',
      'fabric_vm_network_clouds',
      'fabric_cloud_hosts',
      'fabric_cloud_host_groups',
      'fabric_hosts',
      'fabric_host_groups',
    ])
      await tx.query(`DELETE FROM ${table} WHERE management_server_id = $1`, [ms]);

    await insertRows(
      tx,
      ms,
      'fabric_host_groups',
      { host_group_id: 'text', name: 'text', parent_host_group_id: 'text' },
      inv.hostGroups.map((g) => ({
        host_group_id: g.hostGroupId,
        name: g.name,
        parent_host_group_id: g.parentHostGroupId,
      })),
    );
    await insertRows(
      tx,
      ms,
      'fabric_hosts',
      {
        host_id: 'text',
        host_group_id: 'text',
        connection_state: 'text',
        replication_address: 'text',
        replication_port: 'integer',
        memory_bytes: 'bigint',
        cpu_count: 'integer',
        storage_locations: 'jsonb',
        cert_not_after: 'timestamptz',
      },
      inv.hosts.map((h) => ({
        host_id: h.hostId,
        host_group_id: h.hostGroupId,
        connection_state: h.connectionState,
        replication_address: h.replicationAddress,
        replication_port: h.replicationPort,
        memory_bytes: h.memoryBytes,
        cpu_count: h.cpuCount,
        storage_locations: h.storageLocations,
        cert_not_after: h.certNotAfter ?? null,
      })),
    );

    // referenced kinds: upsert what is listed, then reconcile what is not
    await insertRows(
      tx,
      ms,
      'fabric_clouds',
      {
        cloud_id: 'text',
        name: 'text',
        capacity_vm_count: 'integer',
        capacity_memory_bytes: 'bigint',
        capacity_storage_bytes: 'bigint',
      },
      inv.clouds.map((c) => ({
        cloud_id: c.cloudId,
        name: c.name,
        capacity_vm_count: c.capacity.vmCount,
        capacity_memory_bytes: c.capacity.memoryBytes,
        capacity_storage_bytes: c.capacity.storageBytes,
      })),
      `ON CONFLICT (management_server_id, cloud_id) DO UPDATE SET name = excluded.name,
         capacity_vm_count = excluded.capacity_vm_count,
         capacity_memory_bytes = excluded.capacity_memory_bytes,
         capacity_storage_bytes = excluded.capacity_storage_bytes, missing_since = NULL`,
    );
    await reconcileAbsent(
      tx,
      'cloud',
      ms,
      row.name,
      inv.clouds.map((c) => c.cloudId),
    );

    await insertRows(
      tx,
      ms,
      'fabric_vm_networks',
      { vm_network_id: 'text', name: 'text', subnets: 'jsonb' },
      inv.vmNetworks.map((n) => ({ vm_network_id: n.vmNetworkId, name: n.name, subnets: n.subnets })),
      `ON CONFLICT (management_server_id, vm_network_id) DO UPDATE SET name = excluded.name,
         subnets = excluded.subnets, missing_since = NULL`,
    );
    await reconcileAbsent(
      tx,
      'vm-network',
      ms,
      row.name,
      inv.vmNetworks.map((n) => n.vmNetworkId),
    );

    const classifications = storageClassifications(inv);
    await insertRows(
      tx,
      ms,
      'fabric_storage_classifications',
      { name: 'text' },
      classifications.map((name) => ({ name })),
      `ON CONFLICT (management_server_id, name) DO UPDATE SET missing_since = NULL`,
    );
    await reconcileAbsent(tx, 'storage-classification', ms, row.name, classifications);

    await insertRows(
      tx,
      ms,
      'fabric_cloud_host_groups',
      { cloud_id: 'text', host_group_id: 'text' },
      inv.clouds.flatMap((c) => c.hostGroupIds.map((g) => ({ cloud_id: c.cloudId, host_group_id: g }))),
    );
    await insertRows(
      tx,
      ms,
      'fabric_cloud_hosts',
      { cloud_id: 'text', host_id: 'text' },
      cloudHosts(inv).map(([cloud_id, host_id]) => ({ cloud_id, host_id })),
    );
    await insertRows(
      tx,
      ms,
      'fabric_vm_network_clouds',
      { vm_network_id: 'text', cloud_id: 'text' },
      inv.vmNetworks.flatMap((n) => n.cloudIds.map((c) => ({ vm_network_id: n.vmNetworkId, cloud_id: c }))),
    );
    await insertRows(
      tx,
      ms,
      'fabric_vms',
      {
        vm_id: 'text',
        name: 'text',
        host_id: 'text',
        cloud_id: 'text',
        power_state: 'text',
        disks: 'jsonb',
        nics: 'jsonb',
      },
      inv.vms.map((v) => ({
        vm_id: v.vmId,
        name: v.name,
        host_id: v.hostId,
        cloud_id: v.cloudId,
        power_state: v.powerState,
        disks: v.disks,
        nics: v.nics,
      })),
    );
    // hosts reported disconnected raise an alert, connected again resolve it (host-disconnected)
    await reconcileHostAlerts(tx, ms, row.name);
    await tx.query(
      `UPDATE management_servers SET inventory_version = $2, site_ca_cert_pem = $3, management_vm = $4,
         inventory_received_at = now() WHERE management_server_id = $1`,
      [
        ms,
        inv.inventoryVersion,
        inv.siteCaCertPem,
        inv.managementVm === null ? null : JSON.stringify(inv.managementVm),
      ],
    );
    return { inventoryVersion: inv.inventoryVersion, applied: true };
  }
}

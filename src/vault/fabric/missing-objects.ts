/**
 * Fabric objects that pairings and mappings reference do not silently vanish (docs/design/vault.md
 * section 6). When an inventory no longer lists a cloud, VM network or storage classification:
 * - nothing references it: it is deleted with the rest of the old inventory;
 * - a cloud pairing (cloud) or a mapping (network, classification) references it: it is kept with
 *   `missing_since` set, and a Warning alert `fabric-object-missing` is raised for it. It comes back to
 *   `present` (and the alert is resolved) when a later inventory lists the same id again; it is deleted
 *   (and the alert resolved) once the last pairing or mapping that used it is deleted (`pruneMissing`).
 * The tables' foreign keys (ON DELETE RESTRICT) back this: a referenced row cannot be deleted.
 */
import type { Queryable } from '../../persistence/database.js';
import { enqueueAlertDelivery } from '../monitoring/alert-webhooks.js';
import { raiseAlert } from '../monitoring/alerts.js';

export const FABRIC_OBJECT_MISSING_ALERT = 'fabric-object-missing';

export type ReferencedKind = 'cloud' | 'vm-network' | 'storage-classification';

interface KindSql {
  readonly table: string;
  readonly id: string;
  readonly name: string;
  readonly label: string;
  readonly usedBy: string;
  /** SQL true when row `t` is referenced. */
  readonly referenced: string;
}

const KINDS: Readonly<Record<ReferencedKind, KindSql>> = {
  cloud: {
    table: 'fabric_clouds',
    id: 'cloud_id',
    name: 'name',
    label: 'cloud',
    usedBy: 'a cloud pairing',
    referenced: `EXISTS (SELECT 1 FROM cloud_pairing_clouds r
                 WHERE r.management_server_id = t.management_server_id AND r.cloud_id = t.cloud_id)`,
  },
  'vm-network': {
    table: 'fabric_vm_networks',
    id: 'vm_network_id',
    name: 'name',
    label: 'VM network',
    usedBy: 'a network mapping',
    referenced: `EXISTS (SELECT 1 FROM network_mappings r
                 WHERE (r.source_management_server_id = t.management_server_id
                        AND r.source_vm_network_id = t.vm_network_id)
                    OR (r.target_management_server_id = t.management_server_id
                        AND r.target_vm_network_id = t.vm_network_id))`,
  },
  'storage-classification': {
    table: 'fabric_storage_classifications',
    id: 'name',
    name: 'name',
    label: 'storage classification',
    usedBy: 'a storage mapping',
    referenced: `EXISTS (SELECT 1 FROM storage_mappings r
                 WHERE (r.source_management_server_id = t.management_server_id
                        AND r.source_classification = t.name)
                    OR (r.target_management_server_id = t.management_server_id
                        AND r.target_classification = t.name))`,
  },
};

const objectId = (managementServerId: string, id: string): string => `${managementServerId}/${id}`;

async function resolveMissing(tx: Queryable, kind: ReferencedKind, objectIds: string[]): Promise<void> {
  if (objectIds.length === 0) return;
  const r = await tx.query<{ alert_id: string }>(
    `UPDATE alerts SET resolved_at = now()
     WHERE kind = $1 AND object_type = $2 AND resolved_at IS NULL AND object_id = ANY($3::text[])
     RETURNING alert_id`,
    [FABRIC_OBJECT_MISSING_ALERT, kind, objectIds],
  );
  for (const a of r.rows) await enqueueAlertDelivery(tx, String(a.alert_id), 'alert.resolved');
}

/**
 * After an inventory of management server `managementServerId` upserted the objects `presentIds`
 * of `kind` (clearing their `missing_since`): deletes the others nobody references, marks the
 * referenced ones missing with an alert, and resolves the alerts of those present again.
 */
export async function reconcileAbsent(
  tx: Queryable,
  kind: ReferencedKind,
  managementServerId: string,
  managementServerName: string,
  presentIds: readonly string[],
): Promise<void> {
  const k = KINDS[kind];
  await tx.query(
    `DELETE FROM ${k.table} t WHERE t.management_server_id = $1 AND NOT (t.${k.id} = ANY($2::text[]))
       AND NOT ${k.referenced}`,
    [managementServerId, presentIds],
  );
  const missing = await tx.query<{ id: string; name: string }>(
    `UPDATE ${k.table} t SET missing_since = now()
     WHERE t.management_server_id = $1 AND NOT (t.${k.id} = ANY($2::text[])) AND t.missing_since IS NULL
     RETURNING t.${k.id} AS id, t.${k.name} AS name`,
    [managementServerId, presentIds],
  );
  for (const m of missing.rows) {
    const alertId = await raiseAlert(tx, {
      kind: FABRIC_OBJECT_MISSING_ALERT,
      severity: 'Warning',
      objectType: kind,
      objectId: objectId(managementServerId, m.id),
      message:
        `${k.label} ${m.name === m.id ? m.id : `${m.name} (${m.id})`} of management server ${managementServerName} ` +
        `is no longer in its inventory, but ${k.usedBy} uses it; it is kept as missing until the management ` +
        `server reports it again or the ${k.usedBy.replace(/^a /, '')} is deleted`,
    });
    if (alertId !== null) await enqueueAlertDelivery(tx, alertId, 'alert.raised');
  }
  await resolveMissing(
    tx,
    kind,
    presentIds.map((id) => objectId(managementServerId, id)),
  );
}

/** Deletes missing objects nothing references any more (after a pairing or mapping is deleted). */
export async function pruneMissing(tx: Queryable): Promise<void> {
  for (const kind of Object.keys(KINDS) as ReferencedKind[]) {
    const k = KINDS[kind];
    const r = await tx.query<{ management_server_id: string; id: string }>(
      `DELETE FROM ${k.table} t WHERE t.missing_since IS NOT NULL AND NOT ${k.referenced}
       RETURNING t.management_server_id, t.${k.id} AS id`,
    );
    await resolveMissing(
      tx,
      kind,
      r.rows.map((x) => objectId(x.management_server_id, x.id)),
    );
  }
}

/**
 * Alerts of protection (docs/design/vault.md section 5; the rules in
 * src/domain/vault/protection-alert-rules.ts): a replicated item's health Critical, its RPO breach, a
 * disconnected host. Each is raised and resolved, with its webhook delivery, in the caller's
 * transaction.
 *
 * The open alert is the state: each function here reconciles open alerts with the condition as the
 * database holds it, raising where the condition holds and no alert is open, resolving open ones
 * where it no longer holds. Raising is an INSERT the partial unique index `alerts_one_open` makes a
 * no-op for an open alert, resolving an UPDATE ... WHERE resolved_at IS NULL RETURNING that a second
 * process re-checks after the first commits: so several vault processes reconciling at once raise and
 * resolve (and enqueue a delivery) once between them, and a condition that changed without a
 * reconcile (an item deleted, a crash between two steps) is put right by the next one.
 *
 * Who reconciles: the status ingest (health Critical, for the reporting server's items), the
 * inventory ingest (hosts of that server), and the vault's monitor every few seconds (health Critical
 * for all items, so a deleted or disabling item's alert resolves, and the RPO, which grows while no
 * status arrives: computed from last_point_cut_at and the database's now()).
 */
import {
  HOST_DISCONNECTED_ALERT,
  REPLICATED_ITEM_CRITICAL_ALERT,
  RPO_BREACH_ALERT,
  RPO_BREACH_SEVERITY,
  hostDisconnectedMessage,
  hostDisconnectedSeverity,
  itemCriticalMessage,
  rpoBreachMessage,
  rpoThresholdTable,
} from '../../domain/vault/protection-alert-rules.js';
import type { Database, Queryable } from '../../persistence/database.js';
import { enqueueAlertDelivery } from './alert-webhooks.js';
import { raiseAlert } from './alerts.js';

export const ITEM_OBJECT = 'replicated-item';
export const HOST_OBJECT = 'host';

/** A host's alert object id: host ids are unique per management server. */
export const hostObjectId = (managementServerId: string, hostId: string): string =>
  `${managementServerId}/${hostId}`;

/** What a reconcile raised and resolved (alert ids). */
export interface ReconcileResult {
  raised: string[];
  resolved: string[];
}

/** An open alert of `kind` for the object whose id the SQL expression gives (for NOT EXISTS). */
export const OPEN = (kind: string, objectType: string, objectIdSql: string): string =>
  `SELECT 1 FROM alerts a WHERE a.kind = '${kind}' AND a.object_type = '${objectType}'
     AND a.object_id = ${objectIdSql} AND a.resolved_at IS NULL`;

/** Raises each alert not already open, with its delivery; collects the ids raised. */
export async function raiseEach(
  tx: Queryable,
  alerts: ReadonlyArray<Parameters<typeof raiseAlert>[1]>,
  out: ReconcileResult,
): Promise<void> {
  for (const a of alerts) {
    const id = await raiseAlert(tx, a);
    if (id === null) continue; // another process raised it first
    await enqueueAlertDelivery(tx, id, 'alert.raised');
    out.raised.push(id);
  }
}

/** Enqueues the delivery of each alert a reconcile resolved; collects their ids. */
export async function resolveRows(
  tx: Queryable,
  rows: Array<{ alert_id: string }>,
  out: ReconcileResult,
): Promise<void> {
  for (const r of rows) {
    const id = String(r.alert_id);
    await enqueueAlertDelivery(tx, id, 'alert.resolved');
    out.resolved.push(id);
  }
}

/** The item condition of `replicated-item-critical` (alias i). */
const ITEM_CRITICAL = `i.replication_health = 'Critical' AND i.protection_state <> 'Disabling'`;

/**
 * Health Critical: for the items whose primary is on `managementServerId`, or every item when null
 * (which also resolves the alerts of items no longer there).
 */
export async function reconcileItemCriticalAlerts(
  tx: Queryable,
  managementServerId: string | null,
): Promise<ReconcileResult> {
  const out: ReconcileResult = { raised: [], resolved: [] };
  const raise = await tx.query<{ replicated_item_id: string; vm_name: string; health_reasons: string[] }>(
    `SELECT i.replicated_item_id, i.vm_name, i.health_reasons FROM replicated_items i
     WHERE ${ITEM_CRITICAL} AND ($1::text IS NULL OR i.primary_management_server_id = $1)
       AND NOT EXISTS (${OPEN(REPLICATED_ITEM_CRITICAL_ALERT, ITEM_OBJECT, 'i.replicated_item_id')})
     ORDER BY i.replicated_item_id`,
    [managementServerId],
  );
  await raiseEach(
    tx,
    raise.rows.map((i) => ({
      kind: REPLICATED_ITEM_CRITICAL_ALERT,
      severity: 'Critical' as const,
      objectType: ITEM_OBJECT,
      objectId: i.replicated_item_id,
      message: itemCriticalMessage({
        vmName: i.vm_name,
        itemId: i.replicated_item_id,
        reasons: i.health_reasons,
      }),
    })),
    out,
  );
  const resolved = await tx.query<{ alert_id: string }>(
    `UPDATE alerts a SET resolved_at = now()
     WHERE a.kind = $2 AND a.object_type = $3 AND a.resolved_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM replicated_items i WHERE i.replicated_item_id = a.object_id AND ${ITEM_CRITICAL})
       AND ($1::text IS NULL OR a.object_id IN
         (SELECT replicated_item_id FROM replicated_items WHERE primary_management_server_id = $1))
     RETURNING a.alert_id`,
    [managementServerId, REPLICATED_ITEM_CRITICAL_ALERT, ITEM_OBJECT],
  );
  await resolveRows(tx, resolved.rows, out);
  return out;
}

/**
 * The items in RPO breach (alias i, with t.threshold_seconds): protected, with a last point, not
 * paused by a person, and a last point older than their policy's threshold. $1 is the threshold
 * table (rpoThresholdTable) as JSON.
 */
const RPO_BREACHED_FROM = `replicated_items i
  JOIN cloud_pairings p ON p.pairing_id = i.pairing_id
  JOIN replication_policies pol ON pol.policy_id = p.policy_id
  JOIN json_to_recordset($1::json) AS t("copyFrequencySeconds" integer, "thresholdSeconds" double precision)
    ON t."copyFrequencySeconds" = pol.copy_frequency_seconds
  WHERE i.protection_state = 'Protected' AND i.last_point_cut_at IS NOT NULL
    AND i.host_protection_state IS DISTINCT FROM 'paused'
    AND i.last_point_cut_at < now() - make_interval(secs => t."thresholdSeconds")`;

/** RPO breach, for every item: raised while the RPO is above the threshold, resolved when not. */
export async function reconcileRpoAlerts(tx: Queryable): Promise<ReconcileResult> {
  const out: ReconcileResult = { raised: [], resolved: [] };
  const table = JSON.stringify(rpoThresholdTable());
  const raise = await tx.query<{
    replicated_item_id: string;
    vm_name: string;
    last_point_cut_at: Date;
    rpo_seconds: number;
    threshold_seconds: number;
  }>(
    `SELECT i.replicated_item_id, i.vm_name, i.last_point_cut_at,
            extract(epoch FROM now() - i.last_point_cut_at)::double precision AS rpo_seconds,
            t."thresholdSeconds" AS threshold_seconds
     FROM ${RPO_BREACHED_FROM}
       AND NOT EXISTS (${OPEN(RPO_BREACH_ALERT, ITEM_OBJECT, 'i.replicated_item_id')})
     ORDER BY i.replicated_item_id`,
    [table],
  );
  await raiseEach(
    tx,
    raise.rows.map((i) => ({
      kind: RPO_BREACH_ALERT,
      severity: RPO_BREACH_SEVERITY,
      objectType: ITEM_OBJECT,
      objectId: i.replicated_item_id,
      message: rpoBreachMessage({
        vmName: i.vm_name,
        itemId: i.replicated_item_id,
        rpoSeconds: i.rpo_seconds,
        thresholdSeconds: i.threshold_seconds,
        lastPointCutAt: i.last_point_cut_at.toISOString(),
      }),
    })),
    out,
  );
  const resolved = await tx.query<{ alert_id: string }>(
    `UPDATE alerts a SET resolved_at = now()
     WHERE a.kind = $2 AND a.object_type = $3 AND a.resolved_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM ${RPO_BREACHED_FROM} AND i.replicated_item_id = a.object_id)
     RETURNING a.alert_id`,
    [table, RPO_BREACH_ALERT, ITEM_OBJECT],
  );
  await resolveRows(tx, resolved.rows, out);
  return out;
}

/**
 * Disconnected hosts of one management server, after its inventory was stored: raised for each host
 * reported disconnected, resolved for each one connected again or no longer in the inventory.
 */
export async function reconcileHostAlerts(
  tx: Queryable,
  managementServerId: string,
  managementServerName: string,
): Promise<ReconcileResult> {
  const out: ReconcileResult = { raised: [], resolved: [] };
  const raise = await tx.query<{ host_id: string; item_count: string }>(
    `SELECT h.host_id,
       (SELECT count(*) FROM replicated_items i
        WHERE (i.primary_management_server_id = $1 AND i.primary_host_id = h.host_id)
           OR (i.recovery_management_server_id = $1 AND i.replica_host_id = h.host_id)) AS item_count
     FROM fabric_hosts h
     WHERE h.management_server_id = $1 AND h.connection_state = 'disconnected'
       AND NOT EXISTS (${OPEN(HOST_DISCONNECTED_ALERT, HOST_OBJECT, "$1 || '/' || h.host_id")})
     ORDER BY h.host_id`,
    [managementServerId],
  );
  await raiseEach(
    tx,
    raise.rows.map((h) => {
      const count = Number(h.item_count);
      return {
        kind: HOST_DISCONNECTED_ALERT,
        severity: hostDisconnectedSeverity(count),
        objectType: HOST_OBJECT,
        objectId: hostObjectId(managementServerId, h.host_id),
        message: hostDisconnectedMessage({
          hostId: h.host_id,
          managementServerName,
          replicatedItemCount: count,
        }),
      };
    }),
    out,
  );
  const resolved = await tx.query<{ alert_id: string }>(
    `UPDATE alerts a SET resolved_at = now()
     WHERE a.kind = $2 AND a.object_type = $3 AND a.resolved_at IS NULL
       AND left(a.object_id, length($1) + 1) = $1 || '/'
       AND NOT EXISTS (SELECT 1 FROM fabric_hosts h WHERE h.management_server_id = $1
         AND a.object_id = $1 || '/' || h.host_id AND h.connection_state = 'disconnected')
     RETURNING a.alert_id`,
    [managementServerId, HOST_DISCONNECTED_ALERT, HOST_OBJECT],
  );
  await resolveRows(tx, resolved.rows, out);
  return out;
}

/** The monitor's pass (every few seconds in each vault process): health Critical and RPO for every item. */
export async function monitorProtectionAlerts(db: Database): Promise<ReconcileResult> {
  return db.transaction(async (tx) => {
    const critical = await reconcileItemCriticalAlerts(tx, null);
    const rpo = await reconcileRpoAlerts(tx);
    return { raised: [...critical.raised, ...rpo.raised], resolved: [...critical.resolved, ...rpo.resolved] };
  });
}

/**
 * Replicated items in the vault (docs/design/protection.md sections 5-6): reading them, and taking in
 * the replication status management servers report. The enable and disable jobs own the protection
 * state; the reported status owns health, last point, lag and points.
 *
 * Status ingest is one UPDATE per side with json_to_recordset, so a management server with thousands of
 * items costs two statements; rows of another management server are never touched (the WHERE names the
 * reporting server on the side it reports). A replica's points change once per copy interval while
 * the report comes every few seconds (the lag changes): unchanged points are not written again
 * (bench/vault-scale.bench.ts measured the rewrite).
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Database, Queryable } from '../../persistence/database.js';
import type {
  ReplicatedItemDetail,
  ReplicatedItemView,
} from '../../protocol/vault-api/replicated-items.schema.js';
import type { ReplicationStatus } from '../../protocol/vault-api/replication-status.schema.js';
import { reconcileItemCriticalAlerts } from '../monitoring/protection-alerts.js';

interface ItemRow {
  replicated_item_id: string;
  vm_id: string;
  vm_name: string;
  primary_management_server_id: string;
  primary_host_id: string;
  pairing_id: string;
  recovery_management_server_id: string;
  replica_host_id: string | null;
  storage_location: string | null;
  protection_state: ReplicatedItemView['protectionState'];
  replication_health: ReplicatedItemView['replicationHealth'];
  health_reasons: string[];
  host_protection_state: string | null;
  last_point_id: string | null;
  last_point_cut_at: Date | null;
  lag_seconds: number | null;
  last_error: { code: string; message: string } | null;
  enable_job_id: string | null;
  status_reported_at: Date | null;
  created_at: Date;
  points?: ReplicatedItemDetail['points'];
}

const COLUMNS = `replicated_item_id, vm_id, vm_name, primary_management_server_id, primary_host_id, pairing_id,
  recovery_management_server_id, replica_host_id, storage_location, protection_state, replication_health,
  health_reasons, host_protection_state, last_point_id, last_point_cut_at, lag_seconds, last_error,
  enable_job_id, status_reported_at, created_at`;

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

function toView(r: ItemRow): ReplicatedItemView {
  return {
    replicatedItemId: r.replicated_item_id,
    vmId: r.vm_id,
    vmName: r.vm_name,
    primaryManagementServerId: r.primary_management_server_id,
    primaryHostId: r.primary_host_id,
    pairingId: r.pairing_id,
    recoveryManagementServerId: r.recovery_management_server_id,
    replicaHostId: r.replica_host_id,
    storageLocation: r.storage_location,
    protectionState: r.protection_state,
    replicationHealth: r.replication_health,
    healthReasons: r.health_reasons,
    hostProtectionState: r.host_protection_state,
    lastPointId: r.last_point_id,
    lastPointCutAt: iso(r.last_point_cut_at),
    lagSeconds: r.lag_seconds,
    lastError: r.last_error,
    enableJobId: r.enable_job_id,
    statusReportedAt: iso(r.status_reported_at),
    createdAt: r.created_at.toISOString(),
  };
}

export interface ItemFilter {
  readonly managementServerId?: string;
  readonly pairingId?: string;
  readonly protectionState?: string;
  /** Items after this id (paging by id). */
  readonly after?: string;
  readonly limit: number;
}

export class ReplicatedItemsService {
  constructor(private readonly db: Database) {}

  /** A page of items by id; `next` is the cursor of the following page (null on the last). */
  async list(filter: ItemFilter): Promise<{ items: ReplicatedItemView[]; next: string | null }> {
    const where: string[] = [];
    const args: unknown[] = [];
    const add = (sql: string, value: unknown): void => {
      args.push(value);
      where.push(sql.replaceAll('?', `$${args.length}`));
    };
    if (filter.managementServerId !== undefined)
      add(
        '(primary_management_server_id = ? OR recovery_management_server_id = ?)',
        filter.managementServerId,
      );
    if (filter.pairingId !== undefined) add('pairing_id = ?', filter.pairingId);
    if (filter.protectionState !== undefined) add('protection_state = ?', filter.protectionState);
    if (filter.after !== undefined) add('replicated_item_id > ?', filter.after);
    args.push(filter.limit + 1);
    const r = await this.db.query<ItemRow>(
      `SELECT ${COLUMNS} FROM replicated_items ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY replicated_item_id LIMIT $${args.length}`,
      args,
    );
    const rows = r.rows.slice(0, filter.limit);
    return {
      items: rows.map(toView),
      next: r.rows.length > filter.limit ? (rows[rows.length - 1]?.replicated_item_id ?? null) : null,
    };
  }

  /** One item by id, or by VM name when the name is unique among items. */
  async get(idOrName: string, db: Queryable = this.db): Promise<ReplicatedItemDetail> {
    const r = await db.query<ItemRow>(
      `SELECT ${COLUMNS}, points FROM replicated_items
       WHERE replicated_item_id = $1 OR (vm_name = $1 AND NOT EXISTS
         (SELECT 1 FROM replicated_items WHERE replicated_item_id = $1))
       LIMIT 2`,
      [idOrName],
    );
    const row = r.rows[0];
    if (!row) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `no replicated item ${idOrName}; list them with 'secondsite vault item list'`,
        { replicatedItem: idOrName },
      );
    }
    if (r.rows.length > 1) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `several replicated items are VMs named ${idOrName}: give the item id ('secondsite vault item list')`,
        { replicatedItem: idOrName },
      );
    }
    return { ...toView(row), points: row.points ?? [] };
  }

  /**
   * Takes in a management server's replication status: the relationships its hosts run as primary
   * update the items whose VM it holds; the replicas its hosts keep update the items placed on them.
   * Returns how many items each side changed (a replica whose points did not change is not counted).
   */
  async ingestStatus(
    managementServerId: string,
    status: ReplicationStatus,
  ): Promise<{ primaryItems: number; replicaItems: number }> {
    return this.db.transaction(async (tx) => {
      const p = await tx.query(
        `UPDATE replicated_items i SET
           replication_health = r.health,
           health_reasons = r."healthReasons",
           host_protection_state = r."protectionState",
           last_point_id = r."lastPointId",
           last_point_cut_at = r."lastPointCutAt"::timestamptz,
           lag_seconds = r."lagSeconds",
           last_error = r."lastError",
           status_reported_at = now(),
           updated_at = now()
         FROM json_to_recordset($2::json) AS r("hostId" text, "vmId" text, "relationshipId" text,
           "replicaHostId" text, "protectionState" text, health text, "healthReasons" jsonb,
           "lastPointId" text, "lastPointCutAt" text, "lagSeconds" double precision, "lastError" jsonb)
         WHERE i.primary_management_server_id = $1 AND i.vm_id = r."vmId" AND i.primary_host_id = r."hostId"
           AND i.protection_state <> 'Disabling'`,
        [managementServerId, JSON.stringify(status.relationships)],
      );
      const q = await tx.query(
        `UPDATE replicated_items i SET points = r.points, updated_at = now()
         FROM json_to_recordset($2::json) AS r("hostId" text, "relationshipId" text, points jsonb)
         WHERE i.recovery_management_server_id = $1 AND i.replica_host_id = r."hostId"
           -- CASE: compare the points only of the one row that matches (the planner would run the
           -- costlier jsonb comparison first, on all the rows of the replica host)
           AND CASE WHEN i.vm_id = r."relationshipId" THEN i.points IS DISTINCT FROM r.points ELSE false END`,
        [managementServerId, JSON.stringify(status.replicas)],
      );
      // raise or resolve health Critical alerts of this server's items, once across vault processes
      await reconcileItemCriticalAlerts(tx, managementServerId);
      return { primaryItems: p.rowCount ?? 0, replicaItems: q.rowCount ?? 0 };
    });
  }
}

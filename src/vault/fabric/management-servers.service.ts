/**
 * Registered management servers, their provider nodes, and their heartbeats (docs/design/vault.md
 * section 5). A heartbeat marks the server connected and resolves a lost-heartbeat alert; the
 * heartbeat monitor marks it disconnected and raises one. Both are single UPDATEs whose result says
 * whether the state flipped, so several vault processes do it once between them.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Database } from '../../persistence/database.js';
import type { ManagementServerView } from '../../protocol/vault-api/vault-api.schema.js';
import { enqueueAlertDelivery } from '../monitoring/alert-webhooks.js';
import { raiseAlert, resolveAlert } from '../monitoring/alerts.js';

export const HEARTBEAT_LOST_ALERT = 'management-server-heartbeat-lost';
/** Heartbeats missed before a management server counts as disconnected. */
export const MISSED_HEARTBEATS = 3;

interface Row {
  management_server_id: string;
  name: string;
  connection_state: 'connected' | 'disconnected';
  last_heartbeat_at: Date | null;
  heartbeat_interval_seconds: number;
  created_at: Date;
  nodes: Array<{
    node_name: string;
    registered_at: string;
    last_heartbeat_at: string | null;
    cert_not_after: string;
  }>;
}

const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

export class ManagementServersService {
  constructor(private readonly db: Database) {}

  async list(): Promise<ManagementServerView[]> {
    return (await this.rows()).map(toView);
  }

  async get(managementServerId: string): Promise<ManagementServerView> {
    const row = (await this.rows(managementServerId))[0];
    if (!row) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `no management server ${managementServerId}; list them with 'secondsite vault management-server list'`,
        { managementServerId },
      );
    }
    return toView(row);
  }

  /**
   * Records a provider's heartbeat; a server that had lost its heartbeat is connected again. Answers
   * the interval the provider keeps and the inventory version the vault holds for the server.
   */
  async heartbeat(
    managementServerId: string,
    nodeName: string,
    providerVersion: string,
  ): Promise<{ heartbeatIntervalSeconds: number; inventoryVersion: number }> {
    return this.db.transaction(async (tx) => {
      const r = await tx.query<{
        was: string;
        heartbeat_interval_seconds: number;
        inventory_version: string;
      }>(
        // the join reads the state before the update (a CTE read after it in RETURNING would not)
        `UPDATE management_servers m SET last_heartbeat_at = now(), connection_state = 'connected'
         FROM (SELECT connection_state AS was FROM management_servers
               WHERE management_server_id = $1 FOR UPDATE) old
         WHERE m.management_server_id = $1
         RETURNING old.was, m.heartbeat_interval_seconds, m.inventory_version`,
        [managementServerId],
      );
      const row = r.rows[0];
      if (!row)
        throw new SecondsiteError('SECONDSITE_ERR_NOT_FOUND', `no management server ${managementServerId}`);
      await tx.query(
        `UPDATE provider_nodes SET last_heartbeat_at = now(), provider_version = $3
         WHERE management_server_id = $1 AND node_name = $2`,
        [managementServerId, nodeName, providerVersion],
      );
      if (row.was === 'disconnected') {
        const resolved = await resolveAlert(
          tx,
          HEARTBEAT_LOST_ALERT,
          'management-server',
          managementServerId,
        );
        if (resolved !== null) await enqueueAlertDelivery(tx, resolved, 'alert.resolved');
      }
      return {
        heartbeatIntervalSeconds: row.heartbeat_interval_seconds,
        inventoryVersion: Number(row.inventory_version),
      };
    });
  }

  /** Marks servers whose heartbeat is overdue as disconnected, with an alert; returns their ids. */
  async markLostHeartbeats(): Promise<string[]> {
    return this.db.transaction(async (tx) => {
      const r = await tx.query<{
        management_server_id: string;
        name: string;
        last_heartbeat_at: Date | null;
      }>(
        `UPDATE management_servers SET connection_state = 'disconnected'
         WHERE connection_state = 'connected'
           AND coalesce(last_heartbeat_at, created_at) < now() - make_interval(secs => heartbeat_interval_seconds * $1)
         RETURNING management_server_id, name, last_heartbeat_at`,
        [MISSED_HEARTBEATS],
      );
      for (const ms of r.rows) {
        const raised = await raiseAlert(tx, {
          kind: HEARTBEAT_LOST_ALERT,
          severity: 'Critical',
          objectType: 'management-server',
          objectId: ms.management_server_id,
          message: `management server ${ms.name} sent no heartbeat since ${iso(ms.last_heartbeat_at) ?? 'its registration'}: check that 'secondsite manager serve' runs there and can reach the vault`,
        });
        if (raised !== null) await enqueueAlertDelivery(tx, raised, 'alert.raised');
      }
      return r.rows.map((x) => x.management_server_id);
    });
  }

  private async rows(managementServerId?: string): Promise<Row[]> {
    const r = await this.db.query<Row>(
      `SELECT m.management_server_id, m.name, m.connection_state, m.last_heartbeat_at,
              m.heartbeat_interval_seconds, m.created_at,
              coalesce(json_agg(json_build_object(
                'node_name', n.node_name, 'registered_at', n.registered_at,
                'last_heartbeat_at', n.last_heartbeat_at, 'cert_not_after', n.cert_not_after)
                ORDER BY n.node_name) FILTER (WHERE n.node_name IS NOT NULL), '[]') AS nodes
       FROM management_servers m LEFT JOIN provider_nodes n USING (management_server_id)
       ${managementServerId === undefined ? '' : 'WHERE m.management_server_id = $1'}
       GROUP BY m.management_server_id ORDER BY m.name`,
      managementServerId === undefined ? [] : [managementServerId],
    );
    return r.rows;
  }
}

function toView(r: Row): ManagementServerView {
  return {
    managementServerId: r.management_server_id,
    name: r.name,
    connectionState: r.connection_state,
    lastHeartbeatAt: iso(r.last_heartbeat_at),
    heartbeatIntervalSeconds: r.heartbeat_interval_seconds,
    nodes: r.nodes.map((n) => ({
      nodeName: n.node_name,
      registeredAt: iso(n.registered_at) ?? '',
      lastHeartbeatAt: iso(n.last_heartbeat_at),
      certNotAfter: iso(n.cert_not_after) ?? '',
    })),
    createdAt: r.created_at.toISOString(),
  };
}

/**
 * Alerts (DESIGN.md section 6): raised at most once per kind and object while open (a partial unique
 * index), resolved when the condition clears. Several vault processes may raise the same alert at
 * once; the index makes that one alert.
 */
import type { Queryable } from '../../persistence/database.js';
import type { AlertView } from '../../protocol/vault-api/vault-api.schema.js';

export interface AlertInput {
  kind: string;
  severity: 'Warning' | 'Critical';
  objectType: string;
  objectId: string;
  message: string;
}

export async function raiseAlert(db: Queryable, a: AlertInput): Promise<boolean> {
  const r = await db.query(
    `INSERT INTO alerts (kind, severity, object_type, object_id, message) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (kind, object_type, object_id) WHERE resolved_at IS NULL DO NOTHING`,
    [a.kind, a.severity, a.objectType, a.objectId, a.message],
  );
  return r.rowCount > 0;
}

export async function resolveAlert(
  db: Queryable,
  kind: string,
  objectType: string,
  objectId: string,
): Promise<boolean> {
  const r = await db.query(
    `UPDATE alerts SET resolved_at = now()
     WHERE kind = $1 AND object_type = $2 AND object_id = $3 AND resolved_at IS NULL`,
    [kind, objectType, objectId],
  );
  return r.rowCount > 0;
}

export async function listAlerts(db: Queryable, options: { openOnly: boolean }): Promise<AlertView[]> {
  const r = await db.query<{
    alert_id: string;
    kind: string;
    severity: 'Warning' | 'Critical';
    object_type: string;
    object_id: string;
    message: string;
    raised_at: Date;
    resolved_at: Date | null;
  }>(
    `SELECT alert_id, kind, severity, object_type, object_id, message, raised_at, resolved_at FROM alerts
     ${options.openOnly ? 'WHERE resolved_at IS NULL' : ''} ORDER BY alert_id DESC LIMIT 1000`,
  );
  return r.rows.map((x) => ({
    alertId: String(x.alert_id),
    kind: x.kind,
    severity: x.severity,
    objectType: x.object_type,
    objectId: x.object_id,
    message: x.message,
    raisedAt: x.raised_at.toISOString(),
    resolvedAt: x.resolved_at ? x.resolved_at.toISOString() : null,
  }));
}

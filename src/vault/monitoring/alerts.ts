/**
 * Alerts (DESIGN.md section 6): raised at most once per kind and object while open (a partial unique
 * index), resolved when the condition clears. Several vault processes may raise the same alert at
 * once; the index makes that one alert. Raising and resolving return the alert's id so the caller can
 * enqueue its delivery in the same transaction (alert-webhooks.ts).
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

/** Raises an alert; returns its id, or null when one of this kind is already open for the object. */
export async function raiseAlert(db: Queryable, a: AlertInput): Promise<string | null> {
  const r = await db.query<{ alert_id: string }>(
    `INSERT INTO alerts (kind, severity, object_type, object_id, message) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (kind, object_type, object_id) WHERE resolved_at IS NULL DO NOTHING
     RETURNING alert_id`,
    [a.kind, a.severity, a.objectType, a.objectId, a.message],
  );
  return r.rows[0] ? String(r.rows[0].alert_id) : null;
}

/** Resolves the open alert of a kind for an object; returns its id, or null when none was open. */
export async function resolveAlert(
  db: Queryable,
  kind: string,
  objectType: string,
  objectId: string,
): Promise<string | null> {
  const r = await db.query<{ alert_id: string }>(
    `UPDATE alerts SET resolved_at = now()
     WHERE kind = $1 AND object_type = $2 AND object_id = $3 AND resolved_at IS NULL
     RETURNING alert_id`,
    [kind, objectType, objectId],
  );
  return r.rows[0] ? String(r.rows[0].alert_id) : null;
}

interface AlertRow {
  alert_id: string;
  kind: string;
  severity: 'Warning' | 'Critical';
  object_type: string;
  object_id: string;
  message: string;
  raised_at: Date;
  resolved_at: Date | null;
}

const COLUMNS = 'alert_id, kind, severity, object_type, object_id, message, raised_at, resolved_at';

function toView(x: AlertRow): AlertView {
  return {
    alertId: String(x.alert_id),
    kind: x.kind,
    severity: x.severity,
    objectType: x.object_type,
    objectId: x.object_id,
    message: x.message,
    raisedAt: x.raised_at.toISOString(),
    resolvedAt: x.resolved_at ? x.resolved_at.toISOString() : null,
  };
}

/** Newest first, at most 1000; open ones only unless `openOnly` is false. */
export async function listAlerts(db: Queryable, options: { openOnly: boolean }): Promise<AlertView[]> {
  const r = await db.query<AlertRow>(
    `SELECT ${COLUMNS} FROM alerts ${options.openOnly ? 'WHERE resolved_at IS NULL' : ''}
     ORDER BY alert_id DESC LIMIT 1000`,
  );
  return r.rows.map(toView);
}

export async function getAlert(db: Queryable, alertId: string): Promise<AlertView | null> {
  const r = await db.query<AlertRow>(`SELECT ${COLUMNS} FROM alerts WHERE alert_id = $1`, [alertId]);
  return r.rows[0] ? toView(r.rows[0]) : null;
}

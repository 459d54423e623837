/**
 * The append-only audit log: who did what, to which object, with which outcome (a trigger in the
 * schema refuses UPDATE, DELETE and TRUNCATE).
 */
import type { Queryable } from '../../persistence/database.js';
import type { AuditEntry } from '../http/vault-http-server.js';

export interface AuditView {
  id: string;
  at: string;
  principal: string;
  action: string;
  object: string | null;
  outcome: string;
  requestId: string;
}

export async function appendAudit(db: Queryable, e: AuditEntry): Promise<void> {
  await db.query(
    'INSERT INTO audit_log (principal, action, object, outcome, request_id) VALUES ($1, $2, $3, $4, $5)',
    [e.principal, e.action, e.object, e.outcome, e.requestId],
  );
}

/** Newest first. */
export async function listAudit(db: Queryable, limit: number): Promise<AuditView[]> {
  const r = await db.query<{
    id: string;
    at: Date;
    principal: string;
    action: string;
    object: string | null;
    outcome: string;
    request_id: string;
  }>(
    'SELECT id, at, principal, action, object, outcome, request_id FROM audit_log ORDER BY id DESC LIMIT $1',
    [limit],
  );
  return r.rows.map((x) => ({
    id: String(x.id),
    at: x.at.toISOString(),
    principal: x.principal,
    action: x.action,
    object: x.object,
    outcome: x.outcome,
    requestId: x.request_id,
  }));
}

/**
 * `provider-certificate-expiring` (Critical, object `provider-node <managementServerId>/<node>`;
 * docs/design/certificate-renewal.md section 4): a provider node's certificate ends within 30 days.
 * Management servers renew it by themselves once a third of its 365 days is left (about 122 days
 * before its end), so this means renewal has failed for about three months; when the certificate
 * ends, the site loses the vault. Resolved by a renewal (the renewed certificate becoming current)
 * or a new registration, or when the node is gone. Reconciled by the vault's monitor, like the
 * protection alerts (protection-alerts.ts: the open alert is the state).
 */
import type { Database } from '../../persistence/database.js';
import { OPEN, raiseEach, resolveRows, type ReconcileResult } from './protection-alerts.js';

export const PROVIDER_CERTIFICATE_EXPIRING_ALERT = 'provider-certificate-expiring';
export const PROVIDER_NODE_OBJECT = 'provider-node';
/** Days before its end from which a provider certificate raises the alert. */
export const CERTIFICATE_ALERT_DAYS = 30;

const EXPIRING = `n.cert_not_after < now() + make_interval(days => ${CERTIFICATE_ALERT_DAYS})`;
const NODE_ID = `n.management_server_id || '/' || n.node_name`;

export async function reconcileCertificateAlerts(db: Database): Promise<ReconcileResult> {
  return db.transaction(async (tx) => {
    const out: ReconcileResult = { raised: [], resolved: [] };
    const raise = await tx.query<{ node_id: string; name: string; node_name: string; cert_not_after: Date }>(
      `SELECT ${NODE_ID} AS node_id, m.name, n.node_name, n.cert_not_after
       FROM provider_nodes n JOIN management_servers m USING (management_server_id)
       WHERE ${EXPIRING}
         AND NOT EXISTS (${OPEN(PROVIDER_CERTIFICATE_EXPIRING_ALERT, PROVIDER_NODE_OBJECT, NODE_ID)})
       ORDER BY 1`,
    );
    await raiseEach(
      tx,
      raise.rows.map((n) => {
        const ended = n.cert_not_after.getTime() <= Date.now();
        return {
          kind: PROVIDER_CERTIFICATE_EXPIRING_ALERT,
          severity: 'Critical' as const,
          objectType: PROVIDER_NODE_OBJECT,
          objectId: n.node_id,
          message: `the provider certificate of management server ${n.name} (node ${n.node_name}) ${ended ? 'ended' : 'ends'} on ${n.cert_not_after.toISOString()} and was not renewed: ${ended ? "register the node again with a new key ('secondsite manager register')" : "see why with 'secondsite manager certificate show' there, then 'secondsite manager certificate renew'"}`,
        };
      }),
      out,
    );
    const resolved = await tx.query<{ alert_id: string }>(
      `UPDATE alerts a SET resolved_at = now()
       WHERE a.kind = $1 AND a.object_type = $2 AND a.resolved_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM provider_nodes n WHERE ${NODE_ID} = a.object_id AND ${EXPIRING})
       RETURNING a.alert_id`,
      [PROVIDER_CERTIFICATE_EXPIRING_ALERT, PROVIDER_NODE_OBJECT],
    );
    await resolveRows(tx, resolved.rows, out);
    return out;
  });
}

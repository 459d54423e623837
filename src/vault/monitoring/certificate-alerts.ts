/**
 * Certificates that were not renewed (docs/design/certificate-renewal.md), both Critical, both 30 days
 * before the end; reconciled by the vault's monitor, like the protection alerts (protection-alerts.ts:
 * the open alert is the state):
 *
 * - `provider-certificate-expiring` (object `provider-node <managementServerId>/<node>`): management
 *   servers renew theirs once a third of its 365 days is left (about 122 days before its end), so this
 *   means renewal has failed for about three months; when it ends, the site loses the vault. Resolved
 *   by a renewal (the renewed certificate becoming current), a new registration, or the node's removal.
 * - `host-certificate-expiring` (object `host <managementServerId>/<hostId>`): management servers renew
 *   their connected hosts' certificates about 275 days before the end (of 825), so the host has been
 *   unreachable or refusing for months; when it ends, its replication stops. From the end the host's
 *   management server reports in its inventory; resolved by the inventory after a renewal, or when the
 *   host is no longer listed.
 */
import type { Database, Queryable } from '../../persistence/database.js';
import { HOST_OBJECT, OPEN, raiseEach, resolveRows, type ReconcileResult } from './protection-alerts.js';

export const PROVIDER_CERTIFICATE_EXPIRING_ALERT = 'provider-certificate-expiring';
export const PROVIDER_NODE_OBJECT = 'provider-node';
export const HOST_CERTIFICATE_EXPIRING_ALERT = 'host-certificate-expiring';
/** Days before its end from which a provider certificate raises the alert. */
export const CERTIFICATE_ALERT_DAYS = 30;

const expiring = (alias: string): string =>
  `${alias}.cert_not_after < now() + make_interval(days => ${CERTIFICATE_ALERT_DAYS})`;
const EXPIRING = expiring('n');
const NODE_ID = `n.management_server_id || '/' || n.node_name`;
const HOST_ID = `h.management_server_id || '/' || h.host_id`;

const endsOrEnded = (end: Date): string =>
  `${end.getTime() <= Date.now() ? 'ended' : 'ends'} on ${end.toISOString()}`;

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
          message: `the provider certificate of management server ${n.name} (node ${n.node_name}) ${endsOrEnded(n.cert_not_after)} and was not renewed: ${ended ? "register the node again with a new key ('secondsite manager register')" : "see why with 'secondsite manager certificate show' there, then 'secondsite manager certificate renew'"}`,
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
    await reconcileHosts(tx, out);
    return out;
  });
}

async function reconcileHosts(tx: Queryable, out: ReconcileResult): Promise<void> {
  const raise = await tx.query<{ object_id: string; name: string; host_id: string; cert_not_after: Date }>(
    `SELECT ${HOST_ID} AS object_id, m.name, h.host_id, h.cert_not_after
     FROM fabric_hosts h JOIN management_servers m USING (management_server_id)
     WHERE ${expiring('h')}
       AND NOT EXISTS (${OPEN(HOST_CERTIFICATE_EXPIRING_ALERT, HOST_OBJECT, HOST_ID)})
     ORDER BY 1`,
  );
  await raiseEach(
    tx,
    raise.rows.map((h) => ({
      kind: HOST_CERTIFICATE_EXPIRING_ALERT,
      severity: 'Critical' as const,
      objectType: HOST_OBJECT,
      objectId: h.object_id,
      message: `the certificate of host ${h.host_id} of management server ${h.name} ${endsOrEnded(h.cert_not_after)} and was not renewed: bring the host back in reach of its management server and run 'secondsite manager host renew-certificate ${h.host_id}' there${h.cert_not_after.getTime() <= Date.now() ? ", or enrol it again with a new key ('secondsite host enroll')" : ''}`,
    })),
    out,
  );
  const resolved = await tx.query<{ alert_id: string }>(
    `UPDATE alerts a SET resolved_at = now()
     WHERE a.kind = $1 AND a.object_type = $2 AND a.resolved_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM fabric_hosts h WHERE ${HOST_ID} = a.object_id AND ${expiring('h')})
     RETURNING a.alert_id`,
    [HOST_CERTIFICATE_EXPIRING_ALERT, HOST_OBJECT],
  );
  await resolveRows(tx, resolved.rows, out);
}

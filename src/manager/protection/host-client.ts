/**
 * A client of one enrolled host's peer API as its management server (mutual TLS with the manager's
 * certificate, `/peer/v1/manager/...` routes).
 */
import { ControlClient } from '../../control-api/control-client.js';
import { SecondsiteError } from '../../domain/errors.js';
import type { Database } from '../../persistence/database.js';
import type { SiteCa } from '../enrolment/site-ca.js';
import { managerClientTls } from '../hosts/host-poller.js';

export const HOST_CALL_TIMEOUT_MS = 30_000;

export async function enrolledHostClient(
  db: Database,
  siteCa: SiteCa,
  hostId: string,
  timeoutMs = HOST_CALL_TIMEOUT_MS,
): Promise<ControlClient> {
  const r = await db.query<{ replication_address: string; replication_port: number }>(
    'SELECT replication_address, replication_port FROM hosts WHERE host_id = $1',
    [hostId],
  );
  const row = r.rows[0];
  if (!row) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_NOT_FOUND',
      `host ${hostId} is not enrolled in this management server ('secondsite manager host list')`,
      { hostId },
    );
  }
  return ControlClient.peer({
    host: row.replication_address,
    port: row.replication_port,
    hostId,
    tls: managerClientTls(siteCa, hostId, timeoutMs),
  });
}

/**
 * The derived authorization lists of a management server's hosts (docs/design/protection.md
 * section 3), read from the pairings, storage mappings and inventory, with the revision to send them
 * at: the revision increases only when the lists of that management server changed since the last
 * revision recorded (authorization_revisions), so repeated enables send the same revision and hosts
 * treat it as a no-op.
 */
import { createHash } from 'node:crypto';
import {
  deriveAuthorization,
  type CloudHostInput,
  type DerivedHostAuthorization,
} from '../../domain/vault/derived-authorization.js';
import type { Queryable } from '../../persistence/database.js';

export interface ServerAuthorization {
  readonly revision: number;
  readonly hosts: readonly DerivedHostAuthorization[];
}

/** Every derived list, grouped by management server. */
export async function derivedAuthorization(db: Queryable): Promise<Map<string, DerivedHostAuthorization[]>> {
  const pairings = await db.query<{
    primary_management_server_id: string;
    primary_cloud_id: string;
    recovery_management_server_id: string;
    recovery_cloud_id: string;
  }>(
    `SELECT primary_management_server_id, primary_cloud_id, recovery_management_server_id, recovery_cloud_id
     FROM cloud_pairings`,
  );
  const hosts = await db.query<{
    management_server_id: string;
    cloud_id: string;
    host_id: string;
    storage_locations: Array<{ name: string; storageClassification: string }>;
  }>(
    `SELECT ch.management_server_id, ch.cloud_id, h.host_id, h.storage_locations
     FROM fabric_cloud_hosts ch JOIN fabric_hosts h USING (management_server_id, host_id)
     WHERE EXISTS (SELECT 1 FROM cloud_pairing_clouds pc
                   WHERE pc.management_server_id = ch.management_server_id AND pc.cloud_id = ch.cloud_id)`,
  );
  const mappings = await db.query<{
    source_management_server_id: string;
    source_classification: string;
    target_management_server_id: string;
    target_classification: string;
  }>(
    `SELECT source_management_server_id, source_classification, target_management_server_id, target_classification
     FROM storage_mappings`,
  );
  const cas = await db.query<{ management_server_id: string; site_ca_cert_pem: string }>(
    'SELECT management_server_id, site_ca_cert_pem FROM management_servers WHERE site_ca_cert_pem IS NOT NULL',
  );
  const cloudHosts = new Map<string, CloudHostInput[]>();
  for (const h of hosts.rows) {
    const key = `${h.management_server_id}/${h.cloud_id}`;
    const list = cloudHosts.get(key) ?? [];
    list.push({
      hostId: h.host_id,
      storageLocations: h.storage_locations.map((l) => ({
        name: l.name,
        storageClassification: l.storageClassification,
      })),
    });
    cloudHosts.set(key, list);
  }
  const derived = deriveAuthorization({
    pairings: pairings.rows.map((p) => ({
      primary: { managementServerId: p.primary_management_server_id, cloudId: p.primary_cloud_id },
      recovery: { managementServerId: p.recovery_management_server_id, cloudId: p.recovery_cloud_id },
    })),
    storageMappings: mappings.rows.map((m) => ({
      primaryManagementServerId: m.source_management_server_id,
      primaryClassification: m.source_classification,
      recoveryManagementServerId: m.target_management_server_id,
      recoveryClassification: m.target_classification,
    })),
    cloudHosts,
    siteCas: new Map(cas.rows.map((c) => [c.management_server_id, c.site_ca_cert_pem])),
  });
  const byServer = new Map<string, DerivedHostAuthorization[]>();
  for (const h of derived) {
    const list = byServer.get(h.managementServerId) ?? [];
    list.push(h);
    byServer.set(h.managementServerId, list);
  }
  return byServer;
}

/**
 * The lists of one management server's hosts and their revision (bumped and recorded when they
 * changed). Run inside a transaction: the row lock orders concurrent jobs.
 */
export async function serverAuthorization(
  tx: Queryable,
  managementServerId: string,
): Promise<ServerAuthorization> {
  const hosts = (await derivedAuthorization(tx)).get(managementServerId) ?? [];
  const sha = createHash('sha256').update(JSON.stringify(hosts)).digest('hex');
  await tx.query(
    `INSERT INTO authorization_revisions (management_server_id, revision, lists_sha256)
     VALUES ($1, 0, '') ON CONFLICT (management_server_id) DO NOTHING`,
    [managementServerId],
  );
  const held = await tx.query<{ revision: string; lists_sha256: string }>(
    'SELECT revision, lists_sha256 FROM authorization_revisions WHERE management_server_id = $1 FOR UPDATE',
    [managementServerId],
  );
  const row = held.rows[0];
  let revision = Number(row?.revision ?? 0);
  if (row?.lists_sha256 !== sha) {
    revision++;
    await tx.query(
      `UPDATE authorization_revisions SET revision = $2, lists_sha256 = $3, sent_at = now()
       WHERE management_server_id = $1`,
      [managementServerId, revision, sha],
    );
  }
  return { revision, hosts };
}

/**
 * Network and storage mappings (docs/design/vault.md section 6).
 *
 * Network mapping: a VM network of a paired primary cloud -> a VM network available to that
 * pairing's recovery cloud (where a failed-over VM's NIC connects). Refused: a source network that no
 * paired primary cloud offers ("pair its cloud first"), a target that none of the matching recovery
 * clouds offers, a network mapped to itself, a missing network. One mapping per source network; the
 * same mapping again answers the existing one. Several sources may map to one target.
 *
 * Storage mapping: (management server, storage classification) -> (management server, storage
 * classification): replicas of disks on the source classification go to storage locations of the
 * target classification. One per source; the two may be on one management server (single-server
 * topology) but not the same classification.
 *
 * Deleting a mapping deletes nothing else, except a missing network or classification only the
 * mapping kept (missing-objects.ts).
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Database, Queryable } from '../../persistence/database.js';
import type {
  CreateNetworkMappingBody,
  CreateStorageMappingBody,
  NetworkMappingView,
  StorageMappingView,
} from '../../protocol/vault-api/mappings.schema.js';
import { newId } from '../auth/secret-token.js';
import { pruneMissing } from '../fabric/missing-objects.js';

interface NetworkMappingRow {
  mapping_id: string;
  source_ms: string;
  source_ms_name: string;
  source_network: string;
  source_name: string;
  source_missing: boolean;
  target_ms: string;
  target_ms_name: string;
  target_network: string;
  target_name: string;
  target_missing: boolean;
  created_at: Date;
}

const NETWORK_SELECT = `
  SELECT x.mapping_id, x.source_management_server_id AS source_ms, sm.name AS source_ms_name,
         x.source_vm_network_id AS source_network, sn.name AS source_name,
         sn.missing_since IS NOT NULL AS source_missing,
         x.target_management_server_id AS target_ms, tm.name AS target_ms_name,
         x.target_vm_network_id AS target_network, tn.name AS target_name,
         tn.missing_since IS NOT NULL AS target_missing, x.created_at
  FROM network_mappings x
  JOIN management_servers sm ON sm.management_server_id = x.source_management_server_id
  JOIN management_servers tm ON tm.management_server_id = x.target_management_server_id
  JOIN fabric_vm_networks sn
    ON sn.management_server_id = x.source_management_server_id AND sn.vm_network_id = x.source_vm_network_id
  JOIN fabric_vm_networks tn
    ON tn.management_server_id = x.target_management_server_id AND tn.vm_network_id = x.target_vm_network_id`;

function networkView(r: NetworkMappingRow): NetworkMappingView {
  return {
    mappingId: r.mapping_id,
    source: {
      managementServerId: r.source_ms,
      managementServerName: r.source_ms_name,
      vmNetworkId: r.source_network,
      vmNetworkName: r.source_name,
      state: r.source_missing ? 'missing' : 'present',
    },
    target: {
      managementServerId: r.target_ms,
      managementServerName: r.target_ms_name,
      vmNetworkId: r.target_network,
      vmNetworkName: r.target_name,
      state: r.target_missing ? 'missing' : 'present',
    },
    createdAt: r.created_at.toISOString(),
  };
}

interface StorageMappingRow {
  mapping_id: string;
  source_ms: string;
  source_ms_name: string;
  source_classification: string;
  source_missing: boolean;
  target_ms: string;
  target_ms_name: string;
  target_classification: string;
  target_missing: boolean;
  created_at: Date;
}

const STORAGE_SELECT = `
  SELECT x.mapping_id, x.source_management_server_id AS source_ms, sm.name AS source_ms_name,
         x.source_classification, sc.missing_since IS NOT NULL AS source_missing,
         x.target_management_server_id AS target_ms, tm.name AS target_ms_name,
         x.target_classification, tc.missing_since IS NOT NULL AS target_missing, x.created_at
  FROM storage_mappings x
  JOIN management_servers sm ON sm.management_server_id = x.source_management_server_id
  JOIN management_servers tm ON tm.management_server_id = x.target_management_server_id
  JOIN fabric_storage_classifications sc
    ON sc.management_server_id = x.source_management_server_id AND sc.name = x.source_classification
  JOIN fabric_storage_classifications tc
    ON tc.management_server_id = x.target_management_server_id AND tc.name = x.target_classification`;

function storageView(r: StorageMappingRow): StorageMappingView {
  return {
    mappingId: r.mapping_id,
    source: {
      managementServerId: r.source_ms,
      managementServerName: r.source_ms_name,
      classification: r.source_classification,
      state: r.source_missing ? 'missing' : 'present',
    },
    target: {
      managementServerId: r.target_ms,
      managementServerName: r.target_ms_name,
      classification: r.target_classification,
      state: r.target_missing ? 'missing' : 'present',
    },
    createdAt: r.created_at.toISOString(),
  };
}

const mappingNotFound = (kind: string, mappingId: string): SecondsiteError =>
  new SecondsiteError(
    'SECONDSITE_ERR_NOT_FOUND',
    `no ${kind} mapping ${mappingId}; list them with 'secondsite vault ${kind}-mapping list'`,
    { mappingId },
  );

async function listPage<R extends { mapping_id: string }, V>(
  db: Database,
  select: string,
  page: { limit: number; after?: string },
  view: (r: R) => V,
): Promise<{ items: V[]; next: string | null }> {
  const r = await db.query<R>(
    `${select} WHERE ($1::text IS NULL OR x.mapping_id > $1) ORDER BY x.mapping_id LIMIT $2`,
    [page.after ?? null, page.limit + 1],
  );
  const shown = r.rows.slice(0, page.limit);
  return {
    items: shown.map(view),
    next: r.rows.length > page.limit ? (shown[shown.length - 1]?.mapping_id ?? null) : null,
  };
}

async function deleteMapping(db: Database, table: string, kind: string, mappingId: string): Promise<void> {
  await db.transaction(async (tx) => {
    const r = await tx.query(`DELETE FROM ${table} WHERE mapping_id = $1`, [mappingId]);
    if (r.rowCount === 0) throw mappingNotFound(kind, mappingId);
    await pruneMissing(tx);
  });
}

async function presentNetwork(
  tx: Queryable,
  which: 'source' | 'target',
  ms: string,
  id: string,
): Promise<{ name: string }> {
  const r = await tx.query<{ name: string; missing_since: Date | null }>(
    'SELECT name, missing_since FROM fabric_vm_networks WHERE management_server_id = $1 AND vm_network_id = $2 FOR SHARE',
    [ms, id],
  );
  const n = r.rows[0];
  if (!n) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_NOT_FOUND',
      `no ${which} VM network ${id} on management server ${ms}; see 'secondsite vault network list'`,
      { managementServerId: ms, vmNetworkId: id },
    );
  }
  if (n.missing_since) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_STATE',
      `the ${which} VM network ${n.name} (${ms}/${id}) is missing from its management server's inventory; it cannot be mapped until the management server reports it again`,
      { managementServerId: ms, vmNetworkId: id },
    );
  }
  return n;
}

async function presentClassification(
  tx: Queryable,
  which: 'source' | 'target',
  ms: string,
  name: string,
): Promise<void> {
  const r = await tx.query<{ missing_since: Date | null }>(
    'SELECT missing_since FROM fabric_storage_classifications WHERE management_server_id = $1 AND name = $2 FOR SHARE',
    [ms, name],
  );
  const c = r.rows[0];
  if (!c) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_NOT_FOUND',
      `no ${which} storage classification ${name} on management server ${ms}: no storage location of its hosts has it; see 'secondsite vault storage-classification list'`,
      { managementServerId: ms, classification: name },
    );
  }
  if (c.missing_since) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_STATE',
      `the ${which} storage classification ${name} of management server ${ms} is missing from its inventory; it cannot be mapped until a storage location has it again`,
      { managementServerId: ms, classification: name },
    );
  }
}

export class MappingsService {
  constructor(private readonly db: Database) {}

  async listNetwork(page: {
    limit: number;
    after?: string;
  }): Promise<{ items: NetworkMappingView[]; next: string | null }> {
    return listPage(this.db, NETWORK_SELECT, page, networkView);
  }

  async listStorage(page: {
    limit: number;
    after?: string;
  }): Promise<{ items: StorageMappingView[]; next: string | null }> {
    return listPage(this.db, STORAGE_SELECT, page, storageView);
  }

  async createNetwork(
    body: CreateNetworkMappingBody,
  ): Promise<{ mapping: NetworkMappingView; created: boolean }> {
    const src = { ms: body.sourceManagementServerId, id: body.sourceVmNetworkId };
    const dst = { ms: body.targetManagementServerId, id: body.targetVmNetworkId };
    if (src.ms === dst.ms && src.id === dst.id) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `a VM network cannot be mapped to itself (${src.ms}/${src.id}); map it to a network of the recovery cloud`,
      );
    }
    return this.db.transaction(async (tx) => {
      const source = await presentNetwork(tx, 'source', src.ms, src.id);
      const target = await presentNetwork(tx, 'target', dst.ms, dst.id);
      // the pairings whose primary cloud offers the source network, and whether their recovery
      // cloud offers the target
      const pairings = await tx.query<{
        pairing_id: string;
        primary_cloud: string;
        recovery_cloud: string;
        target_offered: boolean;
      }>(
        `SELECT p.pairing_id, pc.name AS primary_cloud, rm.name || '/' || rc.name AS recovery_cloud,
                EXISTS (SELECT 1 FROM fabric_vm_network_clouds t
                        WHERE t.management_server_id = $3 AND t.vm_network_id = $4
                          AND t.management_server_id = p.recovery_management_server_id
                          AND t.cloud_id = p.recovery_cloud_id) AS target_offered
         FROM cloud_pairings p
         JOIN fabric_vm_network_clouds s
           ON s.management_server_id = p.primary_management_server_id AND s.cloud_id = p.primary_cloud_id
         JOIN fabric_clouds pc
           ON pc.management_server_id = p.primary_management_server_id AND pc.cloud_id = p.primary_cloud_id
         JOIN fabric_clouds rc
           ON rc.management_server_id = p.recovery_management_server_id AND rc.cloud_id = p.recovery_cloud_id
         JOIN management_servers rm ON rm.management_server_id = p.recovery_management_server_id
         WHERE s.management_server_id = $1 AND s.vm_network_id = $2
         ORDER BY p.pairing_id`,
        [src.ms, src.id, dst.ms, dst.id],
      );
      if (pairings.rows.length === 0) {
        const clouds = await tx.query<{ name: string }>(
          `SELECT c.name FROM fabric_vm_network_clouds s JOIN fabric_clouds c USING (management_server_id, cloud_id)
           WHERE s.management_server_id = $1 AND s.vm_network_id = $2 ORDER BY c.name`,
          [src.ms, src.id],
        );
        const names = clouds.rows.map((c) => c.name);
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          names.length === 0
            ? `VM network ${source.name} is not available to any cloud, so no pairing can use it: make it available to a cloud on its management server, pair that cloud first ('secondsite vault pairing create'), then map the network`
            : `VM network ${source.name} is available only to clouds that are not the primary cloud of a pairing (${names.join(', ')}): pair its cloud first ('secondsite vault pairing create --primary-cloud ${names[0] ?? ''} --recovery-cloud ... --policy ...'), then map the network`,
          { managementServerId: src.ms, vmNetworkId: src.id, clouds: names },
        );
      }
      if (!pairings.rows.some((p) => p.target_offered)) {
        const recovery = [...new Set(pairings.rows.map((p) => p.recovery_cloud))];
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `VM network ${target.name} is not available to the recovery cloud of ${source.name}'s pairing (${recovery.join(', ')}): choose a VM network of that recovery cloud ('secondsite vault network list --cloud ${recovery[0] ?? ''}')`,
          { recoveryClouds: recovery },
        );
      }
      const mappingId = newId('nmap');
      const inserted = await tx.query(
        `INSERT INTO network_mappings (mapping_id, source_management_server_id, source_vm_network_id,
           target_management_server_id, target_vm_network_id) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (source_management_server_id, source_vm_network_id) DO NOTHING`,
        [mappingId, src.ms, src.id, dst.ms, dst.id],
      );
      const r = await tx.query<NetworkMappingRow>(
        `${NETWORK_SELECT} WHERE x.source_management_server_id = $1 AND x.source_vm_network_id = $2`,
        [src.ms, src.id],
      );
      const mapping = networkView(r.rows[0] as NetworkMappingRow);
      if (inserted.rowCount === 1) return { mapping, created: true };
      if (mapping.target.managementServerId === dst.ms && mapping.target.vmNetworkId === dst.id)
        return { mapping, created: false };
      throw new SecondsiteError(
        'SECONDSITE_ERR_ALREADY_EXISTS',
        `VM network ${source.name} is already mapped to ${mapping.target.managementServerName}/${mapping.target.vmNetworkName} (mapping ${mapping.mappingId}); a network has one mapping: delete that one first`,
        { mappingId: mapping.mappingId },
      );
    });
  }

  async createStorage(
    body: CreateStorageMappingBody,
  ): Promise<{ mapping: StorageMappingView; created: boolean }> {
    const src = { ms: body.sourceManagementServerId, name: body.sourceClassification };
    const dst = { ms: body.targetManagementServerId, name: body.targetClassification };
    if (src.ms === dst.ms && src.name === dst.name) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `a storage classification cannot be mapped to itself (${src.ms}/${src.name}); map it to the classification replicas should use`,
      );
    }
    return this.db.transaction(async (tx) => {
      await presentClassification(tx, 'source', src.ms, src.name);
      await presentClassification(tx, 'target', dst.ms, dst.name);
      const mappingId = newId('smap');
      const inserted = await tx.query(
        `INSERT INTO storage_mappings (mapping_id, source_management_server_id, source_classification,
           target_management_server_id, target_classification) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (source_management_server_id, source_classification) DO NOTHING`,
        [mappingId, src.ms, src.name, dst.ms, dst.name],
      );
      const r = await tx.query<StorageMappingRow>(
        `${STORAGE_SELECT} WHERE x.source_management_server_id = $1 AND x.source_classification = $2`,
        [src.ms, src.name],
      );
      const mapping = storageView(r.rows[0] as StorageMappingRow);
      if (inserted.rowCount === 1) return { mapping, created: true };
      if (mapping.target.managementServerId === dst.ms && mapping.target.classification === dst.name)
        return { mapping, created: false };
      throw new SecondsiteError(
        'SECONDSITE_ERR_ALREADY_EXISTS',
        `storage classification ${src.name} of ${mapping.source.managementServerName} is already mapped to ${mapping.target.managementServerName}/${mapping.target.classification} (mapping ${mapping.mappingId}); a classification has one mapping: delete that one first`,
        { mappingId: mapping.mappingId },
      );
    });
  }

  deleteNetwork(mappingId: string): Promise<void> {
    return deleteMapping(this.db, 'network_mappings', 'network', mappingId);
  }

  deleteStorage(mappingId: string): Promise<void> {
    return deleteMapping(this.db, 'storage_mappings', 'storage', mappingId);
  }
}

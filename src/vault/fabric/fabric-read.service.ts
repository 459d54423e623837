/**
 * Reading the fabric the providers sent (docs/design/vault.md section 6): clouds (hosts, capacity,
 * pairing), hosts, VM networks (subnets, IP pools, mapping), VMs and storage classifications, over
 * every management server or filtered. Lists are keyset pages ordered by (management server id,
 * object id): `after` is the `next` cursor of the previous page, `<managementServerId>/<id>`.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Database } from '../../persistence/database.js';
import type {
  CloudView,
  HostView,
  StorageClassificationView,
  VmNetworkView,
  VmView,
} from '../../protocol/vault-api/fabric.schema.js';

export interface FabricFilter {
  /** A management server's id or name. */
  readonly managementServer?: string;
  /** A cloud id (with managementServer when ids could repeat across servers). */
  readonly cloud?: string;
  readonly name?: string;
  readonly host?: string;
  /** The listed object's own id. */
  readonly id?: string;
}

export interface PageRequest {
  readonly limit: number;
  readonly after?: string;
}

export interface Page<T> {
  readonly items: T[];
  readonly next: string | null;
}

/** Placeholders and conditions of one query. */
class Where {
  readonly params: unknown[] = [];
  private readonly conditions: string[] = [];
  add(sql: (p: (v: unknown) => string) => string): void {
    this.conditions.push(
      sql((v) => {
        this.params.push(v);
        return `$${this.params.length}`;
      }),
    );
  }
  get sql(): string {
    return this.conditions.length ? `WHERE ${this.conditions.join(' AND ')}` : '';
  }
}

/** The key parts of a cursor `a/b[/c]` (the last part may hold '/'), or null for none. */
function cursorOf(after: string | undefined, parts: number): string[] | null {
  if (after === undefined || after === '') return null;
  const out: string[] = [];
  let rest = after;
  for (let i = 1; i < parts; i++) {
    const slash = rest.indexOf('/');
    if (slash <= 0) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `?after=${after} is not a page cursor; pass the 'next' value of the previous page`,
      );
    }
    out.push(rest.slice(0, slash));
    rest = rest.slice(slash + 1);
  }
  out.push(rest);
  return out;
}

/**
 * Common filters and the page cursor; `t` is the listed table's alias, `ids` its key columns after
 * management_server_id (the order of the list).
 */
function where(t: string, ids: string | string[], f: FabricFilter, page: PageRequest): Where {
  const keys = ['management_server_id', ...(Array.isArray(ids) ? ids : [ids])].map((c) => `${t}.${c}`);
  const w = new Where();
  if (f.managementServer !== undefined)
    w.add((p) => {
      const v = p(f.managementServer);
      return `(${t}.management_server_id = ${v} OR m.name = ${v})`;
    });
  const cursor = cursorOf(page.after, keys.length);
  if (cursor) w.add((p) => `(${keys.join(', ')}) > (${cursor.map((v) => p(v)).join(', ')})`);
  return w;
}

async function pageOf<R, T>(
  db: Database,
  sql: string,
  w: Where,
  page: PageRequest,
  view: (r: R) => T,
  key: (r: R) => string,
): Promise<Page<T>> {
  const r = await db.query(`${sql} LIMIT ${page.limit + 1}`, w.params);
  const rows = r.rows as R[];
  const more = rows.length > page.limit;
  const shown = rows.slice(0, page.limit);
  const last = shown[shown.length - 1];
  return { items: shown.map(view), next: more && last ? key(last) : null };
}

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());
const num = (x: string | number | null): number | null => (x === null ? null : Number(x));

interface CloudRow {
  management_server_id: string;
  ms_name: string;
  cloud_id: string;
  name: string;
  missing_since: Date | null;
  capacity_vm_count: number | null;
  capacity_memory_bytes: string | null;
  capacity_storage_bytes: string | null;
  host_group_ids: string[];
  host_ids: string[];
  vm_count: number;
  pairing_id: string | null;
  role: 'primary' | 'recovery' | null;
  peer_ms: string | null;
  peer_ms_name: string | null;
  peer_cloud_id: string | null;
  peer_cloud_name: string | null;
  policy_name: string | null;
}

function cloudView(r: CloudRow): CloudView {
  return {
    managementServerId: r.management_server_id,
    managementServerName: r.ms_name,
    cloudId: r.cloud_id,
    name: r.name,
    state: r.missing_since ? 'missing' : 'present',
    missingSince: iso(r.missing_since),
    hostGroupIds: r.host_group_ids,
    hostIds: r.host_ids,
    capacity: {
      vmCount: r.capacity_vm_count,
      memoryBytes: num(r.capacity_memory_bytes),
      storageBytes: num(r.capacity_storage_bytes),
    },
    vmCount: r.vm_count,
    pairing:
      r.pairing_id !== null && r.role !== null
        ? {
            pairingId: r.pairing_id,
            role: r.role,
            peerManagementServerId: r.peer_ms ?? '',
            peerManagementServerName: r.peer_ms_name ?? '',
            peerCloudId: r.peer_cloud_id ?? '',
            peerCloudName: r.peer_cloud_name ?? '',
            policyName: r.policy_name ?? '',
          }
        : null,
  };
}

interface HostRow {
  management_server_id: string;
  ms_name: string;
  host_id: string;
  host_group_id: string | null;
  host_group_name: string | null;
  connection_state: 'connected' | 'disconnected';
  replication_address: string;
  replication_port: number;
  memory_bytes: string;
  cpu_count: number;
  storage_locations: HostView['storageLocations'];
  cert_not_after: Date | null;
  cloud_ids: string[];
}

interface NetworkRow {
  management_server_id: string;
  ms_name: string;
  vm_network_id: string;
  name: string;
  missing_since: Date | null;
  cloud_ids: string[];
  subnets: VmNetworkView['subnets'];
  mapping_id: string | null;
  target_ms: string | null;
  target_network: string | null;
}

interface VmRow {
  management_server_id: string;
  ms_name: string;
  vm_id: string;
  name: string;
  host_id: string;
  cloud_id: string | null;
  cloud_name: string | null;
  power_state: string;
  disks: VmView['disks'];
  nics: VmView['nics'];
}

interface ClassificationRow {
  management_server_id: string;
  ms_name: string;
  name: string;
  missing_since: Date | null;
  location_count: number;
  capacity_bytes: string;
  free_bytes: string;
  mapping_id: string | null;
  target_ms: string | null;
  target_classification: string | null;
}

export class FabricReadService {
  constructor(private readonly db: Database) {}

  async clouds(f: FabricFilter, page: PageRequest): Promise<Page<CloudView>> {
    const w = where('c', 'cloud_id', f, page);
    if (f.name !== undefined) w.add((p) => `c.name = ${p(f.name)}`);
    if (f.cloud !== undefined) w.add((p) => `c.cloud_id = ${p(f.cloud)}`);
    return pageOf<CloudRow, CloudView>(
      this.db,
      `SELECT c.management_server_id, m.name AS ms_name, c.cloud_id, c.name, c.missing_since,
              c.capacity_vm_count, c.capacity_memory_bytes, c.capacity_storage_bytes,
              ARRAY(SELECT g.host_group_id FROM fabric_cloud_host_groups g
                    WHERE g.management_server_id = c.management_server_id AND g.cloud_id = c.cloud_id
                    ORDER BY 1) AS host_group_ids,
              ARRAY(SELECT h.host_id FROM fabric_cloud_hosts h
                    WHERE h.management_server_id = c.management_server_id AND h.cloud_id = c.cloud_id
                    ORDER BY 1) AS host_ids,
              (SELECT count(*) FROM fabric_vms v
               WHERE v.management_server_id = c.management_server_id AND v.cloud_id = c.cloud_id)::int AS vm_count,
              pc.pairing_id, pc.role, peer.management_server_id AS peer_ms, pm.name AS peer_ms_name,
              peer.cloud_id AS peer_cloud_id, pcl.name AS peer_cloud_name, pol.name AS policy_name
       FROM fabric_clouds c JOIN management_servers m USING (management_server_id)
       LEFT JOIN cloud_pairing_clouds pc
         ON pc.management_server_id = c.management_server_id AND pc.cloud_id = c.cloud_id
       LEFT JOIN cloud_pairing_clouds peer ON peer.pairing_id = pc.pairing_id AND peer.role <> pc.role
       LEFT JOIN management_servers pm ON pm.management_server_id = peer.management_server_id
       LEFT JOIN fabric_clouds pcl
         ON pcl.management_server_id = peer.management_server_id AND pcl.cloud_id = peer.cloud_id
       LEFT JOIN cloud_pairings p ON p.pairing_id = pc.pairing_id
       LEFT JOIN replication_policies pol ON pol.policy_id = p.policy_id
       ${w.sql} ORDER BY c.management_server_id, c.cloud_id`,
      w,
      page,
      cloudView,
      (r) => `${r.management_server_id}/${r.cloud_id}`,
    );
  }

  async cloud(managementServerId: string, cloudId: string): Promise<CloudView> {
    const found = await this.clouds({ managementServer: managementServerId, cloud: cloudId }, { limit: 1 });
    const c = found.items[0];
    if (!c || c.managementServerId !== managementServerId) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `no cloud ${cloudId} on management server ${managementServerId}; list them with 'secondsite vault cloud list'`,
        { managementServerId, cloudId },
      );
    }
    return c;
  }

  async hosts(f: FabricFilter, page: PageRequest): Promise<Page<HostView>> {
    const w = where('h', 'host_id', f, page);
    if (f.cloud !== undefined)
      w.add(
        (
          p,
        ) => `EXISTS (SELECT 1 FROM fabric_cloud_hosts ch WHERE ch.management_server_id = h.management_server_id
                  AND ch.host_id = h.host_id AND ch.cloud_id = ${p(f.cloud)})`,
      );
    if (f.host !== undefined) w.add((p) => `h.host_id = ${p(f.host)}`);
    return pageOf<HostRow, HostView>(
      this.db,
      `SELECT h.management_server_id, m.name AS ms_name, h.host_id, h.host_group_id, g.name AS host_group_name,
              h.connection_state, h.replication_address, h.replication_port, h.memory_bytes, h.cpu_count,
              h.storage_locations, h.cert_not_after,
              ARRAY(SELECT ch.cloud_id FROM fabric_cloud_hosts ch
                    WHERE ch.management_server_id = h.management_server_id AND ch.host_id = h.host_id
                    ORDER BY 1) AS cloud_ids
       FROM fabric_hosts h JOIN management_servers m USING (management_server_id)
       LEFT JOIN fabric_host_groups g
         ON g.management_server_id = h.management_server_id AND g.host_group_id = h.host_group_id
       ${w.sql} ORDER BY h.management_server_id, h.host_id`,
      w,
      page,
      (r) => ({
        managementServerId: r.management_server_id,
        managementServerName: r.ms_name,
        hostId: r.host_id,
        hostGroupId: r.host_group_id,
        hostGroupName: r.host_group_name,
        connectionState: r.connection_state,
        replicationAddress: r.replication_address,
        replicationPort: r.replication_port,
        memoryBytes: Number(r.memory_bytes),
        cpuCount: r.cpu_count,
        storageLocations: r.storage_locations,
        certNotAfter: r.cert_not_after ? r.cert_not_after.toISOString() : null,
        cloudIds: r.cloud_ids,
      }),
      (r) => `${r.management_server_id}/${r.host_id}`,
    );
  }

  async vmNetworks(f: FabricFilter, page: PageRequest): Promise<Page<VmNetworkView>> {
    const w = where('n', 'vm_network_id', f, page);
    if (f.name !== undefined) w.add((p) => `n.name = ${p(f.name)}`);
    if (f.id !== undefined) w.add((p) => `n.vm_network_id = ${p(f.id)}`);
    if (f.cloud !== undefined)
      w.add(
        (
          p,
        ) => `EXISTS (SELECT 1 FROM fabric_vm_network_clouds nc WHERE nc.management_server_id = n.management_server_id
                  AND nc.vm_network_id = n.vm_network_id AND nc.cloud_id = ${p(f.cloud)})`,
      );
    return pageOf<NetworkRow, VmNetworkView>(
      this.db,
      `SELECT n.management_server_id, m.name AS ms_name, n.vm_network_id, n.name, n.missing_since, n.subnets,
              ARRAY(SELECT nc.cloud_id FROM fabric_vm_network_clouds nc
                    WHERE nc.management_server_id = n.management_server_id AND nc.vm_network_id = n.vm_network_id
                    ORDER BY 1) AS cloud_ids,
              nm.mapping_id, nm.target_management_server_id AS target_ms, nm.target_vm_network_id AS target_network
       FROM fabric_vm_networks n JOIN management_servers m USING (management_server_id)
       LEFT JOIN network_mappings nm
         ON nm.source_management_server_id = n.management_server_id AND nm.source_vm_network_id = n.vm_network_id
       ${w.sql} ORDER BY n.management_server_id, n.vm_network_id`,
      w,
      page,
      (r) => ({
        managementServerId: r.management_server_id,
        managementServerName: r.ms_name,
        vmNetworkId: r.vm_network_id,
        name: r.name,
        state: r.missing_since ? 'missing' : 'present',
        missingSince: iso(r.missing_since),
        cloudIds: r.cloud_ids,
        subnets: r.subnets,
        mappedTo:
          r.mapping_id !== null
            ? {
                mappingId: r.mapping_id,
                managementServerId: r.target_ms ?? '',
                vmNetworkId: r.target_network ?? '',
              }
            : null,
      }),
      (r) => `${r.management_server_id}/${r.vm_network_id}`,
    );
  }

  async vms(f: FabricFilter, page: PageRequest): Promise<Page<VmView>> {
    const w = where('v', ['host_id', 'vm_id'], f, page);
    if (f.cloud !== undefined) w.add((p) => `v.cloud_id = ${p(f.cloud)}`);
    if (f.host !== undefined) w.add((p) => `v.host_id = ${p(f.host)}`);
    if (f.name !== undefined) w.add((p) => `v.name = ${p(f.name)}`);
    return pageOf<VmRow, VmView>(
      this.db,
      `SELECT v.management_server_id, m.name AS ms_name, v.vm_id, v.name, v.host_id, v.cloud_id,
              c.name AS cloud_name, v.power_state, v.disks, v.nics
       FROM fabric_vms v JOIN management_servers m USING (management_server_id)
       LEFT JOIN fabric_clouds c ON c.management_server_id = v.management_server_id AND c.cloud_id = v.cloud_id
       ${w.sql} ORDER BY v.management_server_id, v.host_id, v.vm_id`,
      w,
      page,
      (r) => ({
        managementServerId: r.management_server_id,
        managementServerName: r.ms_name,
        vmId: r.vm_id,
        name: r.name,
        hostId: r.host_id,
        cloudId: r.cloud_id,
        cloudName: r.cloud_name,
        powerState: r.power_state,
        disks: r.disks,
        nics: r.nics,
      }),
      (r) => `${r.management_server_id}/${r.host_id}/${r.vm_id}`,
    );
  }

  async storageClassifications(f: FabricFilter, page: PageRequest): Promise<Page<StorageClassificationView>> {
    const w = where('s', 'name', f, page);
    if (f.name !== undefined) w.add((p) => `s.name = ${p(f.name)}`);
    return pageOf<ClassificationRow, StorageClassificationView>(
      this.db,
      `SELECT s.management_server_id, m.name AS ms_name, s.name, s.missing_since,
              coalesce(agg.n, 0)::int AS location_count, coalesce(agg.cap, 0) AS capacity_bytes,
              coalesce(agg.free, 0) AS free_bytes,
              sm.mapping_id, sm.target_management_server_id AS target_ms, sm.target_classification
       FROM fabric_storage_classifications s JOIN management_servers m USING (management_server_id)
       LEFT JOIN LATERAL (
         SELECT count(*) AS n, sum((l->>'capacityBytes')::bigint) AS cap, sum((l->>'freeBytes')::bigint) AS free
         FROM fabric_hosts h, jsonb_array_elements(h.storage_locations) l
         WHERE h.management_server_id = s.management_server_id AND l->>'storageClassification' = s.name) agg ON true
       LEFT JOIN storage_mappings sm
         ON sm.source_management_server_id = s.management_server_id AND sm.source_classification = s.name
       ${w.sql} ORDER BY s.management_server_id, s.name`,
      w,
      page,
      (r) => ({
        managementServerId: r.management_server_id,
        managementServerName: r.ms_name,
        name: r.name,
        state: r.missing_since ? 'missing' : 'present',
        missingSince: iso(r.missing_since),
        locationCount: r.location_count,
        capacityBytes: Number(r.capacity_bytes),
        freeBytes: Number(r.free_bytes),
        mappedTo:
          r.mapping_id !== null
            ? {
                mappingId: r.mapping_id,
                managementServerId: r.target_ms ?? '',
                classification: r.target_classification ?? '',
              }
            : null,
      }),
      (r) => `${r.management_server_id}/${r.name}`,
    );
  }
}

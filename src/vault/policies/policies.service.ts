/**
 * Replication policies in the vault (docs/design/vault.md section 6): create (idempotent for the same
 * settings), read, update (fields not given keep their values; a policy is never renamed, since
 * pairings and audit entries know it by name) and delete. Every write validates with
 * domain/vault/replication-policy.ts; the table's checks repeat the rules as a last line.
 *
 * A policy a cloud pairing uses cannot be deleted: cloud_pairings.policy_id references it ON DELETE
 * RESTRICT, and `delete` answers SECONDSITE_ERR_INVALID_STATE naming the pairings.
 */
import { SecondsiteError } from '../../domain/errors.js';
import {
  mergePolicyUpdate,
  policyDifferences,
  validateReplicationPolicy,
  type InitialReplicationMethod,
  type ReplicationPolicySettings,
} from '../../domain/vault/replication-policy.js';
import type { ResyncMode } from '../../domain/replication/resync-policy.js';
import type { Database, Queryable } from '../../persistence/database.js';
import { isForeignKeyViolation } from '../../persistence/postgres-errors.js';
import type { PolicyView, UpdatePolicyBody } from '../../protocol/vault-api/policies.schema.js';
import { newId } from '../auth/secret-token.js';

interface PolicyRow {
  policy_id: string;
  name: string;
  description: string;
  copy_frequency_seconds: number;
  retention_hours: number;
  app_consistent_frequency_hours: number;
  compression: boolean;
  replication_port: number;
  initial_replication_method: InitialReplicationMethod;
  offline_export_path: string | null;
  offline_import_path: string | null;
  initial_replication_start_at: Date | null;
  delete_replica_on_disable: boolean;
  resync_mode: ResyncMode;
  resync_window: string | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `policy_id, name, description, copy_frequency_seconds, retention_hours,
  app_consistent_frequency_hours, compression, replication_port, initial_replication_method,
  offline_export_path, offline_import_path, initial_replication_start_at, delete_replica_on_disable,
  resync_mode, resync_window, created_at, updated_at`;

function settingsOf(r: PolicyRow): ReplicationPolicySettings {
  return {
    description: r.description,
    copyFrequencySeconds: r.copy_frequency_seconds,
    retentionHours: r.retention_hours,
    appConsistentFrequencyHours: r.app_consistent_frequency_hours,
    compression: r.compression,
    replicationPort: r.replication_port,
    initialReplicationMethod: r.initial_replication_method,
    offlineExportPath: r.offline_export_path ?? undefined,
    offlineImportPath: r.offline_import_path ?? undefined,
    initialReplicationStartAt: r.initial_replication_start_at?.toISOString() ?? 'now',
    deleteReplicaOnDisable: r.delete_replica_on_disable,
    resyncMode: r.resync_mode,
    resyncWindow: r.resync_window ?? undefined,
  };
}

function view(r: PolicyRow): PolicyView {
  const s = settingsOf(r);
  return {
    policyId: r.policy_id,
    name: r.name,
    ...s,
    offlineExportPath: s.offlineExportPath ?? null,
    offlineImportPath: s.offlineImportPath ?? null,
    resyncWindow: s.resyncWindow ?? null,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  };
}

/** The column values of validated settings, in the order of `SETTING_COLUMNS`. */
function columnValues(s: ReplicationPolicySettings): unknown[] {
  return [
    s.description,
    s.copyFrequencySeconds,
    s.retentionHours,
    s.appConsistentFrequencyHours,
    s.compression,
    s.replicationPort,
    s.initialReplicationMethod,
    s.offlineExportPath ?? null,
    s.offlineImportPath ?? null,
    s.initialReplicationStartAt === 'now' ? null : new Date(s.initialReplicationStartAt),
    s.deleteReplicaOnDisable,
    s.resyncMode,
    s.resyncWindow ?? null,
  ];
}

const SETTING_COLUMNS = [
  'description',
  'copy_frequency_seconds',
  'retention_hours',
  'app_consistent_frequency_hours',
  'compression',
  'replication_port',
  'initial_replication_method',
  'offline_export_path',
  'offline_import_path',
  'initial_replication_start_at',
  'delete_replica_on_disable',
  'resync_mode',
  'resync_window',
];

const notFound = (name: string): SecondsiteError =>
  new SecondsiteError(
    'SECONDSITE_ERR_NOT_FOUND',
    `no replication policy ${name}; list them with 'secondsite vault policy list'`,
    { name },
  );

export class PoliciesService {
  constructor(private readonly db: Database) {}

  async list(): Promise<PolicyView[]> {
    const r = await this.db.query<PolicyRow>(`SELECT ${COLUMNS} FROM replication_policies ORDER BY name`);
    return r.rows.map(view);
  }

  async get(name: string): Promise<PolicyView> {
    return view(await this.row(this.db, name));
  }

  /**
   * Creates the policy. The same name with the same settings answers the existing policy
   * (`created: false`); with other settings SECONDSITE_ERR_ALREADY_EXISTS names the differences.
   */
  async create(
    name: string,
    settings: ReplicationPolicySettings,
  ): Promise<{ policy: PolicyView; created: boolean }> {
    const s = validateReplicationPolicy(settings);
    const placeholders = SETTING_COLUMNS.map((_, i) => `$${i + 3}`).join(', ');
    const r = await this.db.query<PolicyRow>(
      `INSERT INTO replication_policies (policy_id, name, ${SETTING_COLUMNS.join(', ')})
       VALUES ($1, $2, ${placeholders})
       ON CONFLICT (name) DO NOTHING RETURNING ${COLUMNS}`,
      [newId('pol'), name, ...columnValues(s)],
    );
    if (r.rows[0]) return { policy: view(r.rows[0]), created: true };
    const existing = await this.row(this.db, name);
    const differences = policyDifferences(settingsOf(existing), s);
    if (differences.length > 0) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_ALREADY_EXISTS',
        `replication policy ${name} already exists with other settings (${differences.join(', ')}); change it with 'secondsite vault policy update ${name}', or pick another name`,
        { name, differences },
      );
    }
    return { policy: view(existing), created: false };
  }

  /** Applies the fields given; refuses a rename. Validates the merged policy. */
  async update(name: string, body: UpdatePolicyBody): Promise<PolicyView> {
    const { name: newName, ...update } = body;
    if (newName !== undefined && newName !== name) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `a replication policy cannot be renamed (${name} -> ${newName}): pairings know it by name; create a new policy instead`,
        { name, newName },
      );
    }
    return this.db.transaction(async (tx) => {
      const current = await this.row(tx, name, true);
      const s = validateReplicationPolicy(mergePolicyUpdate(settingsOf(current), update));
      const sets = SETTING_COLUMNS.map((c, i) => `${c} = $${i + 2}`).join(', ');
      const r = await tx.query<PolicyRow>(
        `UPDATE replication_policies SET ${sets}, updated_at = now() WHERE name = $1 RETURNING ${COLUMNS}`,
        [name, ...columnValues(s)],
      );
      const row = r.rows[0];
      if (!row) throw notFound(name);
      return view(row);
    });
  }

  /** Deletes the policy; refused (SECONDSITE_ERR_INVALID_STATE, naming them) while pairings use it. */
  async delete(name: string): Promise<void> {
    let deleted: number;
    try {
      deleted = (await this.db.query('DELETE FROM replication_policies WHERE name = $1', [name])).rowCount;
    } catch (e) {
      if (!isForeignKeyViolation(e)) throw e;
      const users = await this.db.query<{ pairing_id: string }>(
        `SELECT p.pairing_id FROM cloud_pairings p JOIN replication_policies pol USING (policy_id)
         WHERE pol.name = $1 ORDER BY p.pairing_id`,
        [name],
      );
      const ids = users.rows.map((x) => x.pairing_id);
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `replication policy ${name} is used by cloud pairing${ids.length === 1 ? '' : 's'} ${ids.join(', ')}; delete ${ids.length === 1 ? 'it' : 'them'} first ('secondsite vault pairing delete ID'), or keep the policy`,
        { name, pairingIds: ids },
      );
    }
    if (deleted === 0) throw notFound(name);
  }

  private async row(q: Queryable, name: string, forUpdate = false): Promise<PolicyRow> {
    const r = await q.query<PolicyRow>(
      `SELECT ${COLUMNS} FROM replication_policies WHERE name = $1${forUpdate ? ' FOR UPDATE' : ''}`,
      [name],
    );
    if (!r.rows[0]) throw notFound(name);
    return r.rows[0];
  }
}

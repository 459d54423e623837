/**
 * Cloud pairings (docs/design/vault.md section 6; Site Recovery's protection container mapping): a
 * primary cloud -> a recovery cloud, with a replication policy. Rules:
 * - a cloud is in at most one pairing, as primary or recovery (the `cloud_pairing_clouds` primary key
 *   holds one row per paired cloud; the refusal names the pairing that has it);
 * - the two clouds may be on one management server (single-server topology), but a cloud is never
 *   paired with itself;
 * - both clouds must be present in their inventories (not `missing`), the policy must exist;
 * - creating the same (primary, recovery, policy) again answers the existing pairing (200);
 * - a pairing's policy cannot be deleted while the pairing exists (foreign key, ON DELETE RESTRICT;
 *   policies.service.ts translates the refusal);
 * - a pairing that protects replicated items cannot be deleted: the replicated items table (a later
 *   migration) references `cloud_pairings` ON DELETE RESTRICT and `delete` translates that refusal.
 * Deleting a pairing leaves the network mappings (they are about networks, and stay valid for a new
 * pairing of the same clouds); a missing cloud that only the pairing kept is deleted with it.
 */
import { SecondsiteError } from '../../domain/errors.js';
import { refuseManagementVmInCloud } from '../protection/management-vm.js';
import type { Database, Queryable } from '../../persistence/database.js';
import { isForeignKeyViolation, isUniqueViolation } from '../../persistence/postgres-errors.js';
import type { CreatePairingBody, PairingView } from '../../protocol/vault-api/pairings.schema.js';
import { newId } from '../auth/secret-token.js';
import { pruneMissing } from '../fabric/missing-objects.js';

interface PairingRow {
  pairing_id: string;
  primary_management_server_id: string;
  primary_ms_name: string;
  primary_cloud_id: string;
  primary_cloud_name: string;
  primary_missing: boolean;
  recovery_management_server_id: string;
  recovery_ms_name: string;
  recovery_cloud_id: string;
  recovery_cloud_name: string;
  recovery_missing: boolean;
  policy_id: string;
  policy_name: string;
  created_at: Date;
}

const SELECT = `
  SELECT p.pairing_id, p.primary_management_server_id, pm.name AS primary_ms_name, p.primary_cloud_id,
         pc.name AS primary_cloud_name, pc.missing_since IS NOT NULL AS primary_missing,
         p.recovery_management_server_id, rm.name AS recovery_ms_name, p.recovery_cloud_id,
         rc.name AS recovery_cloud_name, rc.missing_since IS NOT NULL AS recovery_missing,
         p.policy_id, pol.name AS policy_name, p.created_at
  FROM cloud_pairings p
  JOIN management_servers pm ON pm.management_server_id = p.primary_management_server_id
  JOIN management_servers rm ON rm.management_server_id = p.recovery_management_server_id
  JOIN fabric_clouds pc
    ON pc.management_server_id = p.primary_management_server_id AND pc.cloud_id = p.primary_cloud_id
  JOIN fabric_clouds rc
    ON rc.management_server_id = p.recovery_management_server_id AND rc.cloud_id = p.recovery_cloud_id
  JOIN replication_policies pol ON pol.policy_id = p.policy_id`;

function view(r: PairingRow): PairingView {
  return {
    pairingId: r.pairing_id,
    primary: {
      managementServerId: r.primary_management_server_id,
      managementServerName: r.primary_ms_name,
      cloudId: r.primary_cloud_id,
      cloudName: r.primary_cloud_name,
      state: r.primary_missing ? 'missing' : 'present',
    },
    recovery: {
      managementServerId: r.recovery_management_server_id,
      managementServerName: r.recovery_ms_name,
      cloudId: r.recovery_cloud_id,
      cloudName: r.recovery_cloud_name,
      state: r.recovery_missing ? 'missing' : 'present',
    },
    policyId: r.policy_id,
    policyName: r.policy_name,
    createdAt: r.created_at.toISOString(),
  };
}

/** How people read a pairing in a message. */
export function describePairing(p: PairingView): string {
  return `${p.pairingId} (${p.primary.managementServerName}/${p.primary.cloudName} -> ${p.recovery.managementServerName}/${p.recovery.cloudName}, policy ${p.policyName})`;
}

const notFound = (pairingId: string): SecondsiteError =>
  new SecondsiteError(
    'SECONDSITE_ERR_NOT_FOUND',
    `no cloud pairing ${pairingId}; list them with 'secondsite vault pairing list'`,
    { pairingId },
  );

export class PairingsService {
  constructor(private readonly db: Database) {}

  async list(page: {
    limit: number;
    after?: string;
  }): Promise<{ pairings: PairingView[]; next: string | null }> {
    const r = await this.db.query<PairingRow>(
      `${SELECT} WHERE ($1::text IS NULL OR p.pairing_id > $1) ORDER BY p.pairing_id LIMIT $2`,
      [page.after ?? null, page.limit + 1],
    );
    const shown = r.rows.slice(0, page.limit).map(view);
    return {
      pairings: shown,
      next: r.rows.length > page.limit ? (shown[shown.length - 1]?.pairingId ?? null) : null,
    };
  }

  async get(pairingId: string): Promise<PairingView> {
    const r = await this.db.query<PairingRow>(`${SELECT} WHERE p.pairing_id = $1`, [pairingId]);
    if (!r.rows[0]) throw notFound(pairingId);
    return view(r.rows[0]);
  }

  /** Creates the pairing, or answers the same one (`created: false`); refuses with the rule broken. */
  async create(body: CreatePairingBody): Promise<{ pairing: PairingView; created: boolean }> {
    const primary = { ms: body.primaryManagementServerId, cloud: body.primaryCloudId };
    const recovery = { ms: body.recoveryManagementServerId, cloud: body.recoveryCloudId };
    if (primary.ms === recovery.ms && primary.cloud === recovery.cloud) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `a cloud cannot be paired with itself (${primary.ms}/${primary.cloud}); choose another recovery cloud, on this management server or another`,
        { managementServerId: primary.ms, cloudId: primary.cloud },
      );
    }
    // a concurrent create of a pairing with one of these clouds loses on the primary key: run again,
    // and the second run answers with the rule (or the same pairing)
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction((tx) => this.createIn(tx, body, primary, recovery));
      } catch (e) {
        if (!isUniqueViolation(e) || attempt >= 3) throw e;
      }
    }
  }

  private async createIn(
    tx: Queryable,
    body: CreatePairingBody,
    primary: { ms: string; cloud: string },
    recovery: { ms: string; cloud: string },
  ): Promise<{ pairing: PairingView; created: boolean }> {
    for (const [role, c] of [
      ['primary', primary],
      ['recovery', recovery],
    ] as const) {
      const r = await tx.query<{ name: string; missing_since: Date | null }>(
        `SELECT name, missing_since FROM fabric_clouds WHERE management_server_id = $1 AND cloud_id = $2 FOR SHARE`,
        [c.ms, c.cloud],
      );
      const cloud = r.rows[0];
      if (!cloud) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_NOT_FOUND',
          `no ${role} cloud ${c.cloud} on management server ${c.ms}: the vault knows the clouds its management servers' inventories list; see 'secondsite vault cloud list'`,
          { managementServerId: c.ms, cloudId: c.cloud },
        );
      }
      if (cloud.missing_since) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          `the ${role} cloud ${cloud.name} (${c.ms}/${c.cloud}) is missing from its management server's inventory since ${cloud.missing_since.toISOString()}; it cannot be paired until the management server reports it again`,
          { managementServerId: c.ms, cloudId: c.cloud },
        );
      }
    }
    await refuseManagementVmInCloud(tx, primary.ms, primary.cloud);
    const policy = await tx.query<{ policy_id: string }>(
      'SELECT policy_id FROM replication_policies WHERE name = $1 FOR SHARE',
      [body.policy],
    );
    const policyId = policy.rows[0]?.policy_id;
    if (policyId === undefined) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `no replication policy ${body.policy}; create it with 'secondsite vault policy create ${body.policy}' or list them with 'secondsite vault policy list'`,
        { policy: body.policy },
      );
    }
    const existing = await tx.query<PairingRow>(
      `${SELECT} WHERE p.pairing_id IN (
         SELECT pairing_id FROM cloud_pairing_clouds
         WHERE (management_server_id, cloud_id) IN (($1, $2), ($3, $4)))
       ORDER BY p.pairing_id`,
      [primary.ms, primary.cloud, recovery.ms, recovery.cloud],
    );
    const same = existing.rows.find(
      (p) =>
        p.primary_management_server_id === primary.ms &&
        p.primary_cloud_id === primary.cloud &&
        p.recovery_management_server_id === recovery.ms &&
        p.recovery_cloud_id === recovery.cloud,
    );
    if (same && same.policy_id === policyId) return { pairing: view(same), created: false };
    if (same) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_ALREADY_EXISTS',
        `these clouds are already paired with policy ${same.policy_name} (pairing ${same.pairing_id}); a pairing keeps its policy: change the policy's settings with 'secondsite vault policy update ${same.policy_name}', or delete the pairing and create it again`,
        { pairingId: same.pairing_id, policy: same.policy_name },
      );
    }
    const other = existing.rows[0];
    if (other) {
      const p = view(other);
      const inUse =
        (p.primary.managementServerId === primary.ms && p.primary.cloudId === primary.cloud) ||
        (p.recovery.managementServerId === primary.ms && p.recovery.cloudId === primary.cloud)
          ? primary
          : recovery;
      const role =
        p.primary.managementServerId === inUse.ms && p.primary.cloudId === inUse.cloud
          ? 'primary'
          : 'recovery';
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `cloud ${inUse.ms}/${inUse.cloud} is already the ${role} cloud of pairing ${describePairing(p)}; a cloud is in at most one pairing: choose another cloud, or delete that pairing first`,
        { pairingId: p.pairingId, managementServerId: inUse.ms, cloudId: inUse.cloud },
      );
    }
    const pairingId = newId('pair');
    await tx.query(
      `INSERT INTO cloud_pairings (pairing_id, primary_management_server_id, primary_cloud_id,
         recovery_management_server_id, recovery_cloud_id, policy_id) VALUES ($1, $2, $3, $4, $5, $6)`,
      [pairingId, primary.ms, primary.cloud, recovery.ms, recovery.cloud, policyId],
    );
    await tx.query(
      `INSERT INTO cloud_pairing_clouds (management_server_id, cloud_id, pairing_id, role)
       VALUES ($1, $2, $5, 'primary'), ($3, $4, $5, 'recovery')`,
      [primary.ms, primary.cloud, recovery.ms, recovery.cloud, pairingId],
    );
    const made = await tx.query<PairingRow>(`${SELECT} WHERE p.pairing_id = $1`, [pairingId]);
    return { pairing: view(made.rows[0] as PairingRow), created: true };
  }

  /** Deletes the pairing; refused while replicated items reference it (a later table's foreign key). */
  async delete(pairingId: string): Promise<void> {
    try {
      await this.db.transaction(async (tx) => {
        const r = await tx.query('DELETE FROM cloud_pairings WHERE pairing_id = $1', [pairingId]);
        if (r.rowCount === 0) throw notFound(pairingId);
        await pruneMissing(tx);
      });
    } catch (e) {
      if (!isForeignKeyViolation(e)) throw e;
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `cloud pairing ${pairingId} protects replicated items; disable their replication first, then delete the pairing`,
        { pairingId },
      );
    }
  }
}

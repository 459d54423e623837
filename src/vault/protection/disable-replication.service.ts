/**
 * Disabling replication of a replicated item (docs/design/protection.md section 6): the item becomes
 * `Disabling` and a `disable-replication` job removes the relationship and then the item. Whether the
 * replica is deleted is the pairing policy's `deleteReplicaOnDisable` unless the caller says.
 *
 * Idempotent: an item in `Disabling` answers its running job (or, when its last job failed, a new one).
 * An item still `Enabling` under its enable job is refused (the enable command may be on its way to
 * the primary host, and would recreate the relationship after the disable); from
 * `InitialReplicationInProgress` on, the relationship exists and disabling is allowed: the enable
 * job, waiting for the first point, sees the item go and fails with that reason.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Database } from '../../persistence/database.js';
import type { DisableReplicationResult } from '../../protocol/vault-api/replicated-items.schema.js';
import type { JobsService } from '../jobs/jobs.service.js';
import { DISABLE_COMMAND_TIMEOUT_SECONDS, startDisableReplication } from './disable-replication.job.js';
import { ReplicatedItemsService } from './replicated-items.service.js';

export async function disableReplication(
  db: Database,
  jobs: JobsService,
  itemRef: string,
  options: { readonly deleteReplica?: boolean | undefined; readonly force?: boolean },
  startedBy: string,
): Promise<DisableReplicationResult> {
  const force = options.force === true;
  if (force && options.deleteReplica === true) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      "a forced removal does not contact the hosts, so it cannot delete the replica; remove the item with force alone, then delete the replica on the replica host ('secondsite host replica delete ID') if it comes back",
    );
  }
  const found = await new ReplicatedItemsService(db).get(itemRef);
  const item = await db.transaction(async (tx) => {
    const r = await tx.query<{
      protection_state: string;
      vm_name: string;
      delete_replica_on_disable: boolean;
      enable_job_running: boolean;
      enable_job_id: string | null;
    }>(
      `SELECT i.protection_state, i.vm_name, pol.delete_replica_on_disable, i.enable_job_id,
              EXISTS (SELECT 1 FROM vault_jobs j WHERE j.job_id::text = i.enable_job_id
                        AND j.state IN ('NotStarted', 'InProgress')) AS enable_job_running
       FROM replicated_items i
       JOIN cloud_pairings p USING (pairing_id)
       JOIN replication_policies pol ON pol.policy_id = p.policy_id
       WHERE i.replicated_item_id = $1
       FOR UPDATE OF i`,
      [found.replicatedItemId],
    );
    const row = r.rows[0];
    if (!row) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `replicated item ${itemRef} is gone (disabled meanwhile?); list them with 'secondsite vault item list'`,
        { replicatedItem: itemRef },
      );
    }
    if (row.protection_state === 'Enabling' && row.enable_job_running) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `replication of ${row.vm_name} is being enabled by job ${row.enable_job_id ?? '?'} and has not reached the primary host yet; wait for that step ('secondsite vault job wait ${row.enable_job_id ?? 'ID'}'), then disable it`,
        { replicatedItemId: found.replicatedItemId, jobId: row.enable_job_id },
      );
    }
    if (row.protection_state !== 'Disabling') {
      await tx.query(
        `UPDATE replicated_items SET protection_state = 'Disabling', updated_at = now()
         WHERE replicated_item_id = $1`,
        [found.replicatedItemId],
      );
    }
    return row;
  });
  const deleteReplica = force ? false : (options.deleteReplica ?? item.delete_replica_on_disable);
  const { jobId, created } = await startDisableReplication(
    jobs,
    { replicatedItemId: found.replicatedItemId, vmName: item.vm_name, deleteReplica, force },
    startedBy,
  );
  if (created)
    return { replicatedItemId: found.replicatedItemId, vmName: item.vm_name, deleteReplica, force, jobId };
  // the running job's choice holds
  const running = await db.query<{ delete_replica: boolean | null; force: boolean | null }>(
    `SELECT (params->>'deleteReplica')::boolean AS delete_replica, (params->>'force')::boolean AS force
     FROM vault_jobs WHERE job_id = $1`,
    [jobId],
  );
  const runningForced = running.rows[0]?.force === true;
  if (force && !runningForced) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_STATE',
      `replication of ${item.vm_name} is being disabled by job ${jobId}, which waits for the primary management server to answer (at most ${DISABLE_COMMAND_TIMEOUT_SECONDS} s); when it has ended ('secondsite vault job wait ${jobId}'), remove the item with force again`,
      { replicatedItemId: found.replicatedItemId, jobId },
    );
  }
  return {
    replicatedItemId: found.replicatedItemId,
    vmName: item.vm_name,
    deleteReplica: running.rows[0]?.delete_replica ?? deleteReplica,
    force: runningForced,
    jobId,
  };
}

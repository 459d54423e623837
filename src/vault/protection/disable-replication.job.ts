/**
 * Job kind `disable-replication` (docs/design/protection.md section 6): one replicated item from
 * `Disabling` to gone.
 *
 *   disable  the primary management server disables the relationship on the primary host (command
 *            `replication.disable`); when asked, the primary host deletes the replica on the replica
 *            host over the peer API. A primary host that no longer knows the relationship answers
 *            `disabled: false`: success. An item never placed had no relationship: no command.
 *            Forced (`force`, for a site that is gone): no command; the hosts keep what they have.
 *   forget   the item row is deleted (no tombstone: the job and the audit log keep the history, and
 *            the pairing can only be deleted once its items are gone).
 *
 * The authorization lists are not sent again: they are derived from pairings, not items, so disabling
 * an item does not change them (the `authorization-sync` job sends them when a pairing changes).
 * A failed step leaves the item in `Disabling`; disabling it again starts a new job.
 */
import { z } from 'zod/v4';
import { SecondsiteError } from '../../domain/errors.js';
import {
  RELATIONSHIP_DISABLE_COMMAND,
  relationshipDisableResultSchema,
} from '../../protocol/vault-api/protection-commands.schema.js';
import { defineJobKind, step, type StepContext } from '../jobs/job-kind.js';
import type { JobsService } from '../jobs/jobs.service.js';

export const DISABLE_REPLICATION = 'disable-replication';
/** How long the disable step waits for the primary management server's answer. */
export const DISABLE_COMMAND_TIMEOUT_SECONDS = 120;

const paramsSchema = z.object({
  replicatedItemId: z.string(),
  deleteReplica: z.boolean(),
  force: z.boolean().default(false),
});
type Params = z.infer<typeof paramsSchema>;
type Ctx = StepContext<Params>;

async function disable(ctx: Ctx): Promise<unknown> {
  const r = await ctx.db.query<{
    vm_id: string;
    primary_management_server_id: string;
    primary_host_id: string;
    replica_host_id: string | null;
    protection_state: string;
  }>(
    `SELECT vm_id, primary_management_server_id, primary_host_id, replica_host_id, protection_state
     FROM replicated_items WHERE replicated_item_id = $1`,
    [ctx.params.replicatedItemId],
  );
  const item = r.rows[0];
  if (!item) return { disabled: false, itemGone: true };
  if (item.protection_state !== 'Disabling') {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_STATE',
      `replicated item ${ctx.params.replicatedItemId} is ${item.protection_state}, not Disabling`,
    );
  }
  // never placed: the enable job sent no relationship to the primary host
  if (item.replica_host_id === null) return { disabled: false, neverPlaced: true };
  if (ctx.params.force) {
    await ctx.progress(
      100,
      `forced: ${item.primary_host_id} and ${item.replica_host_id} are not contacted; disable the relationship and delete the replica on them if they come back`,
    );
    return { disabled: false, forced: true };
  }
  await ctx.progress(
    0,
    `disabling on ${item.primary_host_id}${ctx.params.deleteReplica ? ' and deleting the replica' : ''}`,
  );
  return ctx.sendCommand({
    managementServerId: item.primary_management_server_id,
    kind: RELATIONSHIP_DISABLE_COMMAND,
    body: {
      hostId: item.primary_host_id,
      relationshipId: item.vm_id,
      deleteReplica: ctx.params.deleteReplica,
    },
    timeoutSeconds: DISABLE_COMMAND_TIMEOUT_SECONDS,
    parse: (x) => relationshipDisableResultSchema.parse(x),
  });
}

async function forget(ctx: Ctx): Promise<unknown> {
  const r = await ctx.transaction((tx) =>
    tx.query(
      `DELETE FROM replicated_items WHERE replicated_item_id = $1 AND protection_state = 'Disabling'`,
      [ctx.params.replicatedItemId],
    ),
  );
  return { deleted: (r.rowCount ?? 0) > 0 };
}

export const disableReplicationJob = defineJobKind<Params>({
  kind: DISABLE_REPLICATION,
  cancellable: false,
  params: paramsSchema,
  title: (_p, name) => `Disable replication of ${name}`,
  steps: [
    step('disable', 'Disable replication on the primary host', disable),
    step('forget', 'Remove the replicated item', forget),
  ],
});

/** Starts (or finds the running) disable job of an item. */
export function startDisableReplication(
  jobs: JobsService,
  item: {
    readonly replicatedItemId: string;
    readonly vmName: string;
    readonly deleteReplica: boolean;
    readonly force: boolean;
  },
  startedBy: string,
): Promise<{ jobId: string; created: boolean }> {
  return jobs.start({
    kind: DISABLE_REPLICATION,
    params: { replicatedItemId: item.replicatedItemId, deleteReplica: item.deleteReplica, force: item.force },
    target: { type: 'replicated-item', id: item.replicatedItemId, name: item.vmName },
    startedBy,
    exclusiveKey: `${DISABLE_REPLICATION}:${item.replicatedItemId}`,
  });
}

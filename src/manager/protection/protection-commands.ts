/**
 * The provider's protection commands (protocol/vault-api/protection-commands.schema.ts), carried out
 * on this management server's hosts over their peer API:
 *
 * - `authorization.apply`: every enrolled host gets its derived authorization list (an empty one when
 *   the vault names it not), at the vault's revision. Hosts hold the newest revision they saw, so a
 *   late or repeated command changes nothing. The command fails when a host the vault needs (the
 *   primary and the replica of the item being enabled) did not apply it; other hosts' failures are
 *   reported in the result and retried with the next revision.
 * - `replication.enable`: the primary host enables the relationship (idempotent on the host).
 * - `replication.disable`: the primary host disables it, deleting the replica when asked.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Logger } from '../../observability/logger.js';
import type { Database } from '../../persistence/database.js';
import {
  AUTHORIZATION_APPLY_COMMAND,
  authorizationApplyBodySchema,
  RELATIONSHIP_DISABLE_COMMAND,
  RELATIONSHIP_ENABLE_COMMAND,
  relationshipDisableBodySchema,
  relationshipEnableBodySchema,
  type AuthorizationApplyResult,
} from '../../protocol/vault-api/protection-commands.schema.js';
import type { SiteCa } from '../enrolment/site-ca.js';
import { parseBody } from '../fabric/fabric-api.schema.js';
import type { CommandLoop } from '../provider/command-loop.js';
import { enrolledHostClient } from './host-client.js';

export interface ProtectionCommandDeps {
  readonly db: Database;
  readonly siteCa: () => Promise<SiteCa>;
  readonly log: Logger;
}

export async function applyAuthorization(
  deps: ProtectionCommandDeps,
  body: unknown,
): Promise<AuthorizationApplyResult> {
  const b = parseBody(authorizationApplyBodySchema, body);
  const enrolled = (
    await deps.db.query<{ host_id: string }>('SELECT host_id FROM hosts ORDER BY host_id')
  ).rows.map((r) => r.host_id);
  const ca = await deps.siteCa();
  const result: AuthorizationApplyResult = { applied: [], failed: [] };
  await Promise.all(
    enrolled.map(async (hostId) => {
      const list = b.hosts.find((h) => h.hostId === hostId);
      try {
        const client = await enrolledHostClient(deps.db, ca, hostId);
        await client.call('PUT', '/peer/v1/manager/authorization', {
          revision: b.revision,
          entries: list?.entries ?? [],
          trustGroups: list?.trustGroups ?? [],
        });
        result.applied.push(hostId);
      } catch (e) {
        const message = (e as Error).message;
        // a host that already holds a newer revision has newer lists: nothing to do
        if (/is older and was not applied/.test(message)) result.applied.push(hostId);
        else result.failed.push({ hostId, message });
      }
    }),
  );
  result.applied.sort();
  const missing = b.required.filter((h) => !result.applied.includes(h));
  if (missing.length > 0) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_CONNECTION_LOST',
      `the authorization lists did not reach ${missing
        .map(
          (h) =>
            `${h} (${result.failed.find((f) => f.hostId === h)?.message ?? 'not enrolled in this management server'})`,
        )
        .join('; ')}`,
      { missing },
    );
  }
  if (result.failed.length > 0)
    deps.log.warn('authorization lists not applied on some hosts', { failed: result.failed });
  return result;
}

export function registerProtectionCommands(loop: CommandLoop, deps: ProtectionCommandDeps): void {
  loop.register(AUTHORIZATION_APPLY_COMMAND, (body) => applyAuthorization(deps, body));
  loop.register(RELATIONSHIP_ENABLE_COMMAND, async (body) => {
    const b = parseBody(relationshipEnableBodySchema, body);
    const client = await enrolledHostClient(deps.db, await deps.siteCa(), b.hostId);
    const view = await client.post<{ definition: { relationshipId: string }; protectionState: string }>(
      '/peer/v1/manager/relationships',
      b.relationship,
    );
    return { relationshipId: view.definition.relationshipId, protectionState: view.protectionState };
  });
  loop.register(RELATIONSHIP_DISABLE_COMMAND, async (body) => {
    const b = parseBody(relationshipDisableBodySchema, body);
    const client = await enrolledHostClient(deps.db, await deps.siteCa(), b.hostId);
    return client.delete(
      `/peer/v1/manager/relationships/${encodeURIComponent(b.relationshipId)}${b.deleteReplica ? '?deleteReplica=true' : ''}`,
    );
  });
}

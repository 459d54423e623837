/**
 * The provider's protection commands (protocol/vault-api/protection-commands.schema.ts), carried out
 * on this management server's hosts over their peer API:
 *
 * - `authorization.apply`: every enrolled host gets its derived authorization list (an empty one when
 *   the vault names it not), at the vault's revision. Hosts hold the newest revision they saw, so a
 *   late or repeated command changes nothing. The command fails when a host the vault needs (the
 *   primary and the replica of the item being enabled) did not apply it; other hosts' failures are
 *   reported in the result, and the reconciler (authorization-reconciler.ts) retries them.
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
import type { AuthorizationReconciler } from './authorization-reconciler.js';
import { enrolledHostClient } from './host-client.js';

export interface ProtectionCommandDeps {
  readonly db: Database;
  readonly siteCa: () => Promise<SiteCa>;
  readonly authorization: AuthorizationReconciler;
  readonly log: Logger;
}

export async function applyAuthorization(
  deps: ProtectionCommandDeps,
  body: unknown,
): Promise<AuthorizationApplyResult> {
  const b = parseBody(authorizationApplyBodySchema, body);
  const result = await deps.authorization.apply(b);
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

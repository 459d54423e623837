/**
 * Job kind `authorization-sync` (docs/design/protection.md section 7): sends one management server
 * the derived authorization lists of its hosts (authorization-lists.ts) with the `authorization.apply`
 * command, no host required (`required: []`: a host that is down gets the next revision). Started by
 * the pairing routes after a pairing is created or deleted, once per management server of the pairing;
 * so a deleted pairing withdraws its trust from the hosts.
 *
 * One job per management server at a time (exclusive key). A change made while a job runs is not
 * lost: after its command the step reads the lists again and, when their revision moved on, sends the
 * newer revision too (each revision is its own command key, so a re-run after a vault process died
 * finds the command it recorded instead of sending another).
 */
import { z } from 'zod/v4';
import {
  AUTHORIZATION_APPLY_COMMAND,
  authorizationApplyResultSchema,
  type AuthorizationApplyResult,
} from '../../protocol/vault-api/protection-commands.schema.js';
import { defineJobKind, step } from '../jobs/job-kind.js';
import type { JobsService } from '../jobs/jobs.service.js';
import { serverAuthorization } from './authorization-lists.js';

export const AUTHORIZATION_SYNC = 'authorization-sync';
const COMMAND_TIMEOUT_SECONDS = 120;
/** Bounds the resend loop (each round is one change that arrived while the previous one was sent). */
const MAX_ROUNDS = 20;

const paramsSchema = z.object({ managementServerId: z.string() });
type Params = z.infer<typeof paramsSchema>;

export const authorizationSyncJob = defineJobKind<Params>({
  kind: AUTHORIZATION_SYNC,
  cancellable: true,
  params: paramsSchema,
  title: (_p, name) => `Send the authorization lists of management server ${name}`,
  steps: [
    step('apply', "Send the hosts' authorization lists", async (ctx) => {
      let last: { revision: number; result: AuthorizationApplyResult } | null = null;
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const lists = await ctx.transaction((tx) => serverAuthorization(tx, ctx.params.managementServerId));
        if (last !== null && lists.revision === last.revision) break;
        await ctx.progress(0, `sending revision ${lists.revision} (${lists.hosts.length} host list(s))`);
        const result = await ctx.sendCommand({
          managementServerId: ctx.params.managementServerId,
          kind: AUTHORIZATION_APPLY_COMMAND,
          key: `revision-${lists.revision}`,
          body: {
            revision: lists.revision,
            hosts: lists.hosts.map((h) => ({
              hostId: h.hostId,
              entries: h.entries,
              trustGroups: h.trustGroups,
            })),
            required: [],
          },
          timeoutSeconds: COMMAND_TIMEOUT_SECONDS,
          parse: (r) => authorizationApplyResultSchema.parse(r),
        });
        last = { revision: lists.revision, result };
      }
      return last;
    }),
  ],
});

/** Starts (or finds the running) authorization sync of a management server. */
export function startAuthorizationSync(
  jobs: JobsService,
  server: { readonly managementServerId: string; readonly name: string },
  startedBy: string,
): Promise<{ jobId: string; created: boolean }> {
  return jobs.start({
    kind: AUTHORIZATION_SYNC,
    params: { managementServerId: server.managementServerId },
    target: { type: 'management-server', id: server.managementServerId, name: server.name },
    startedBy,
    exclusiveKey: `${AUTHORIZATION_SYNC}:${server.managementServerId}`,
  });
}

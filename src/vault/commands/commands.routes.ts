/**
 * The provider command channel's routes (docs/design/vault.md section 7; provider-commands.ts): a
 * provider long-polls its management server's commands and posts their outcomes. Action
 * `provider.commands`, scoped to the management server in the path: another site's provider is
 * refused before anything is read.
 */
import { SecondsiteError } from '../../domain/errors.js';
import {
  commandListSchema,
  commandResultAcceptedSchema,
  commandResultBodySchema,
} from '../../protocol/vault-api/jobs.schema.js';
import { route, type VaultRoute } from '../http/vault-route.js';
import type { CommandChannel } from './provider-commands.js';

/** Longest long-poll: below the provider client's 30 s request timeout. */
export const MAX_WAIT_SECONDS = 25;

const msIdOf = (params: Readonly<Record<string, string>>): string => params['managementServerId'] ?? '';

function waitSecondsOf(query: URLSearchParams): number {
  const text = query.get('waitSeconds') ?? '0';
  const n = Number(text);
  if (!/^\d{1,3}$/.test(text) || n > MAX_WAIT_SECONDS) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `waitSeconds '${text}' is not a whole number of seconds from 0 to ${MAX_WAIT_SECONDS}`,
    );
  }
  return n;
}

export function commandRoutes(deps: { readonly commands: CommandChannel }): VaultRoute[] {
  return [
    route({
      method: 'GET',
      path: '/v1/management-servers/:managementServerId/commands',
      operationId: 'pollProviderCommands',
      summary: `The provider's pending commands (?waitSeconds=N, at most ${MAX_WAIT_SECONDS}: answers when one is queued, or after N s with none)`,
      action: 'provider.commands',
      scope: ({ params }) => msIdOf(params),
      response: commandListSchema,
      handler: async ({ params, query, signal }) => ({
        body: { commands: await deps.commands.poll(msIdOf(params), waitSecondsOf(query), signal) },
      }),
    }),
    route({
      method: 'POST',
      path: '/v1/management-servers/:managementServerId/commands/:commandId/result',
      operationId: 'postProviderCommandResult',
      summary: "A command's outcome ({ok: true, result} or {ok: false, error}); the first one posted wins",
      action: 'provider.commands',
      audit: false,
      scope: ({ params }) => msIdOf(params),
      body: commandResultBodySchema,
      response: commandResultAcceptedSchema,
      handler: async ({ params, body }) => ({
        body: await deps.commands.postResult(msIdOf(params), params['commandId'] ?? '', body),
      }),
    }),
  ];
}

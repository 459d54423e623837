/**
 * The job routes of the vault's API (docs/design/vault.md section 7), spread into the route table by
 * vault-routes.ts: list and show jobs (`job.read`, every role), cancel one of a cancellable kind
 * (`job.cancel`), and start an inventory refresh of a management server (`management-server.write`).
 * Jobs are vault-wide objects: no machine principal reads them.
 */
import { SecondsiteError } from '../../domain/errors.js';
import { principalName, type Principal } from '../../domain/vault/rbac.js';
import {
  JOB_STATES,
  cancelJobBodySchema,
  jobDetailSchema,
  jobListSchema,
  jobSchema,
  jobStartedSchema,
  refreshBodySchema,
  type JobState,
} from '../../protocol/vault-api/jobs.schema.js';
import type { ManagementServersService } from '../fabric/management-servers.service.js';
import { route, type VaultRoute } from '../http/vault-route.js';
import { DEFAULT_REFRESH_TIMEOUT_SECONDS, startInventoryRefresh } from './inventory-refresh.job.js';
import type { JobsService } from './jobs.service.js';

const jobIdOf = (params: Readonly<Record<string, string>>): string => params['jobId'] ?? '';
const who = (p: Principal | null): string => (p ? principalName(p) : 'anonymous');

function filterOf(query: URLSearchParams): { state?: JobState; kind?: string; limit: number } {
  const state = query.get('state');
  if (state !== null && !(JOB_STATES as readonly string[]).includes(state)) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `state '${state}' is not one of ${JOB_STATES.join(', ')}`,
    );
  }
  const limitText = query.get('limit') ?? '100';
  const limit = Number(limitText);
  if (!/^\d{1,4}$/.test(limitText) || limit < 1 || limit > 1000) {
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `limit '${limitText}' is not 1-1000`);
  }
  const kind = query.get('kind');
  return {
    ...(state !== null ? { state: state as JobState } : {}),
    ...(kind !== null ? { kind } : {}),
    limit,
  };
}

export function jobRoutes(deps: {
  readonly jobs: JobsService;
  readonly managementServers: ManagementServersService;
}): VaultRoute[] {
  return [
    route({
      method: 'GET',
      path: '/v1/jobs',
      operationId: 'listJobs',
      summary: 'Jobs, newest first (?state=InProgress&kind=inventory-refresh&limit=N, at most 1000)',
      action: 'job.read',
      response: jobListSchema,
      handler: async ({ query }) => ({ body: { jobs: await deps.jobs.list(filterOf(query)) } }),
    }),
    route({
      method: 'GET',
      path: '/v1/jobs/:jobId',
      operationId: 'getJob',
      summary: 'One job with its tasks (progress, messages, errors) and events',
      action: 'job.read',
      response: jobDetailSchema,
      handler: async ({ params }) => ({ body: await deps.jobs.get(jobIdOf(params)) }),
    }),
    route({
      method: 'POST',
      path: '/v1/jobs/:jobId/cancel',
      operationId: 'cancelJob',
      summary: 'Cancel a job of a cancellable kind (a running one stops at its next step or wait)',
      action: 'job.cancel',
      body: cancelJobBodySchema,
      response: jobSchema,
      handler: async ({ params, principal }) => ({
        body: await deps.jobs.cancel(jobIdOf(params), who(principal)),
      }),
    }),
    route({
      method: 'POST',
      path: '/v1/management-servers/:managementServerId/refresh',
      operationId: 'refreshManagementServer',
      summary:
        'Start a job that refreshes the inventory of a management server (202 with the job id; the running one if there is one)',
      action: 'management-server.write',
      scope: ({ params }) => params['managementServerId'] ?? '',
      body: refreshBodySchema,
      response: jobStartedSchema,
      handler: async ({ params, principal, body }) => {
        const ms = await deps.managementServers.get(params['managementServerId'] ?? '');
        const started = await startInventoryRefresh(
          deps.jobs,
          ms,
          who(principal),
          body.timeoutSeconds ?? DEFAULT_REFRESH_TIMEOUT_SECONDS,
        );
        return { status: 202, body: started };
      },
    }),
  ];
}

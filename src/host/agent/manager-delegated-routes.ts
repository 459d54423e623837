/**
 * The control API routes this host's management server may call remotely: the same handlers as the
 * local control socket, under `/peer/v1/manager/...` on the peer API, each behind
 * `requireManagerCaller` (docs/design/protection.md section 5). The manager is the host's remote
 * administrator for replication: relationships (enable, pause, resume, resync, disable), the replicas
 * kept here, the managed authorization list and the replication status; one implementation, so the
 * vault's operations behave exactly as `secondsite host ...` does.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Route } from '../../control-api/control-server.js';
import { requireManagerCaller } from './manager-caller.js';

/** Method + control API path of each route the manager may call. */
export const MANAGER_DELEGATED: ReadonlyArray<readonly [Route['method'], string]> = [
  ['GET', '/v1/relationships'],
  ['POST', '/v1/relationships'],
  ['GET', '/v1/relationships/:id'],
  ['DELETE', '/v1/relationships/:id'],
  ['POST', '/v1/relationships/:id/pause'],
  ['POST', '/v1/relationships/:id/resume'],
  ['POST', '/v1/relationships/:id/resync'],
  ['GET', '/v1/replicas'],
  ['GET', '/v1/replicas/:id'],
  ['GET', '/v1/authorization'],
  ['PUT', '/v1/authorization'],
  ['GET', '/v1/replication-status'],
];

export const MANAGER_PEER_PREFIX = '/peer/v1/manager';

/** The delegated routes, rebased under MANAGER_PEER_PREFIX and guarded. */
export function managerDelegatedRoutes(controlRoutes: readonly Route[]): Route[] {
  return MANAGER_DELEGATED.map(([method, path]) => {
    const route = controlRoutes.find((r) => r.method === method && r.path === path);
    if (!route) {
      throw new SecondsiteError('SECONDSITE_ERR_INTERNAL', `no control route ${method} ${path} to delegate`);
    }
    return {
      method,
      path: `${MANAGER_PEER_PREFIX}${path.slice('/v1'.length)}`,
      handler: async (req) => {
        requireManagerCaller(req.callerHostId);
        return route.handler(req);
      },
    };
  });
}

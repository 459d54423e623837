/**
 * The cloud pairing routes of the vault's API (`/v1/cloud-pairings`), spread into the route table by
 * vault-routes.ts: reading needs `protection.read`, creating and deleting `pairing.write`. The rules
 * are in pairings.service.ts. After a pairing is created or deleted (committed), an
 * `authorization-sync` job per management server of the pairing sends the derived authorization lists
 * that changed with it (docs/design/protection.md section 7).
 */
import type { Principal } from '../../domain/vault/rbac.js';
import { principalName } from '../../domain/vault/rbac.js';
import type { Database } from '../../persistence/database.js';
import {
  createPairingBodySchema,
  pairingDeletedSchema,
  pairingListSchema,
  pairingSchema,
  type PairingView,
} from '../../protocol/vault-api/pairings.schema.js';
import { pageRequest } from '../fabric/list-query.js';
import { route, type VaultRoute } from '../http/vault-route.js';
import type { JobsService } from '../jobs/jobs.service.js';
import { startAuthorizationSync } from '../protection/authorization-sync.job.js';
import { PairingsService } from './pairings.service.js';

const pairingId = (params: Readonly<Record<string, string>>): string => params['pairingId'] ?? '';

export function pairingRoutes(deps: { readonly db: Database; readonly jobs: JobsService }): VaultRoute[] {
  const pairings = new PairingsService(deps.db);
  /** One authorization sync per management server of the pairing (one when both ends are on it). */
  const syncAuthorization = async (pairing: PairingView, principal: Principal): Promise<void> => {
    const servers = new Map([
      [pairing.primary.managementServerId, pairing.primary.managementServerName],
      [pairing.recovery.managementServerId, pairing.recovery.managementServerName],
    ]);
    for (const [managementServerId, name] of servers)
      await startAuthorizationSync(deps.jobs, { managementServerId, name }, principalName(principal));
  };
  return [
    route({
      method: 'GET',
      path: '/v1/cloud-pairings',
      operationId: 'listCloudPairings',
      summary: "Cloud pairings (?limit=N, ?after=CURSOR: the previous page's next)",
      action: 'protection.read',
      response: pairingListSchema,
      handler: async ({ query }) => ({ body: await pairings.list(pageRequest(query)) }),
    }),
    route({
      method: 'GET',
      path: '/v1/cloud-pairings/:pairingId',
      operationId: 'getCloudPairing',
      summary: 'One cloud pairing',
      action: 'protection.read',
      response: pairingSchema,
      handler: async ({ params }) => ({ body: await pairings.get(pairingId(params)) }),
    }),
    route({
      method: 'POST',
      path: '/v1/cloud-pairings',
      operationId: 'createCloudPairing',
      summary:
        'Pair a primary cloud with a recovery cloud under a replication policy (201; 200 for the same pairing again); a cloud is in at most one pairing',
      action: 'pairing.write',
      body: createPairingBodySchema,
      response: pairingSchema,
      auditObject: ({ body }) =>
        `${body.primaryManagementServerId}/${body.primaryCloudId}->${body.recoveryManagementServerId}/${body.recoveryCloudId}`,
      handler: async ({ body, principal }) => {
        const { pairing, created } = await pairings.create(body);
        if (created) await syncAuthorization(pairing, principal as Principal);
        return { status: created ? 201 : 200, body: pairing };
      },
    }),
    route({
      method: 'DELETE',
      path: '/v1/cloud-pairings/:pairingId',
      operationId: 'deleteCloudPairing',
      summary: 'Delete a cloud pairing (refused while it protects replicated items)',
      action: 'pairing.write',
      response: pairingDeletedSchema,
      handler: async ({ params, principal }) => {
        const id = pairingId(params);
        const pairing = await pairings.get(id);
        await pairings.delete(id);
        await syncAuthorization(pairing, principal as Principal);
        return { body: { pairingId: id, deleted: true } };
      },
    }),
  ];
}

/**
 * Replicated items in the vault's API (docs/design/protection.md): list and show them
 * (`protection.read`), enable replication for VMs or a whole primary cloud (`item.enable`, 202 with a
 * job per item), disable it (`item.disable`, 202 with the disable job), and the providers' replication status reports (`provider.inventory`, own server).
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Principal } from '../../domain/vault/rbac.js';
import { principalName } from '../../domain/vault/rbac.js';
import type { Database } from '../../persistence/database.js';
import {
  disableReplicationResultSchema,
  enableReplicationBodySchema,
  enableReplicationResultSchema,
  replicatedItemDetailSchema,
  replicatedItemListSchema,
} from '../../protocol/vault-api/replicated-items.schema.js';
import { replicationStatusSchema } from '../../protocol/vault-api/replication-status.schema.js';
import { z } from 'zod/v4';
import { pageRequest, queryText } from '../fabric/list-query.js';
import { route, type VaultRoute } from '../http/vault-route.js';
import type { JobsService } from '../jobs/jobs.service.js';
import { disableReplication } from './disable-replication.service.js';
import { enableReplication } from './enable-replication.service.js';
import { ReplicatedItemsService } from './replicated-items.service.js';

/** Status reports list every relationship of a management server: up to 100,000 items. */
const STATUS_MAX_BODY_BYTES = 64 * 1024 * 1024;

export function protectionRoutes(deps: { readonly db: Database; readonly jobs: JobsService }): VaultRoute[] {
  const items = new ReplicatedItemsService(deps.db);
  return [
    route({
      method: 'GET',
      path: '/v1/replicated-items',
      operationId: 'listReplicatedItems',
      summary:
        'Replicated items (?managementServerId=, ?pairingId=, ?protectionState=; ?limit=N, ?after=CURSOR)',
      action: 'protection.read',
      response: replicatedItemListSchema,
      handler: async ({ query }) => {
        const page = pageRequest(query);
        const managementServerId = queryText(query, 'managementServerId');
        const pairingId = queryText(query, 'pairingId');
        const protectionState = queryText(query, 'protectionState');
        return {
          body: await items.list({
            ...page,
            ...(managementServerId !== undefined ? { managementServerId } : {}),
            ...(pairingId !== undefined ? { pairingId } : {}),
            ...(protectionState !== undefined ? { protectionState } : {}),
          }),
        };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/replicated-items/:replicatedItemId',
      operationId: 'getReplicatedItem',
      summary: 'One replicated item (by id, or by VM name when unique) with its recovery points',
      action: 'protection.read',
      response: replicatedItemDetailSchema,
      handler: async ({ params }) => ({ body: await items.get(params['replicatedItemId'] ?? '') }),
    }),
    route({
      method: 'POST',
      path: '/v1/replicated-items',
      operationId: 'enableReplication',
      summary:
        'Enable replication for VMs (vmIds) or every VM of a primary cloud (cloudId): 202 with one enable job per item; VMs already protected keep their item',
      action: 'item.enable',
      body: enableReplicationBodySchema,
      response: enableReplicationResultSchema,
      auditObject: ({ body }) => `${body.managementServerId}/${body.cloudId ?? (body.vmIds ?? []).join(',')}`,
      handler: async ({ body, principal }) => ({
        status: 202,
        body: {
          items: await enableReplication(deps.db, deps.jobs, body, principalName(principal as Principal)),
        },
      }),
    }),
    route({
      method: 'DELETE',
      path: '/v1/replicated-items/:replicatedItemId',
      operationId: 'disableReplication',
      summary:
        "Disable replication of an item (by id, or by VM name when unique): 202 with the disable job, which removes the relationship and then the item; ?deleteReplica=true|false overrides the policy's deleteReplicaOnDisable; ?force=true removes the item without contacting its hosts (a site that is gone). An item in Disabling answers its running job",
      action: 'item.disable',
      response: disableReplicationResultSchema,
      handler: async ({ params, query, principal }) => {
        const flag = (name: string): boolean | undefined => {
          const text = queryText(query, name);
          if (text !== undefined && text !== 'true' && text !== 'false') {
            throw new SecondsiteError(
              'SECONDSITE_ERR_INVALID_ARGUMENT',
              `?${name}= is true or false, not '${text}'`,
            );
          }
          return text === undefined ? undefined : text === 'true';
        };
        return {
          status: 202,
          body: await disableReplication(
            deps.db,
            deps.jobs,
            params['replicatedItemId'] ?? '',
            { deleteReplica: flag('deleteReplica'), force: flag('force') === true },
            principalName(principal as Principal),
          ),
        };
      },
    }),
    route({
      method: 'PUT',
      path: '/v1/management-servers/:managementServerId/replication-status',
      operationId: 'putReplicationStatus',
      summary: "A provider's replication status: its hosts' relationships and replicas (own server only)",
      action: 'provider.inventory',
      audit: false,
      maxBodyBytes: STATUS_MAX_BODY_BYTES,
      scope: ({ params }) => params['managementServerId'] ?? '',
      body: replicationStatusSchema,
      response: z.object({ primaryItems: z.number(), replicaItems: z.number() }),
      handler: async ({ params, body }) => ({
        body: await items.ingestStatus(params['managementServerId'] ?? '', body),
      }),
    }),
  ];
}

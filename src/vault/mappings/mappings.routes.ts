/**
 * The network and storage mapping routes of the vault's API (`/v1/network-mappings`,
 * `/v1/storage-mappings`), spread into the route table by vault-routes.ts: reading needs
 * `protection.read`, creating and deleting `mapping.write`. The rules are in mappings.service.ts.
 */
import type { Database } from '../../persistence/database.js';
import {
  createNetworkMappingBodySchema,
  createStorageMappingBodySchema,
  mappingDeletedSchema,
  networkMappingListSchema,
  networkMappingSchema,
  storageMappingListSchema,
  storageMappingSchema,
} from '../../protocol/vault-api/mappings.schema.js';
import { pageRequest } from '../fabric/list-query.js';
import { route, type VaultRoute } from '../http/vault-route.js';
import { MappingsService } from './mappings.service.js';

const mappingId = (params: Readonly<Record<string, string>>): string => params['mappingId'] ?? '';
const PAGE = "?limit=N, ?after=CURSOR (the previous page's next)";

export function mappingRoutes(deps: { readonly db: Database }): VaultRoute[] {
  const mappings = new MappingsService(deps.db);
  return [
    route({
      method: 'GET',
      path: '/v1/network-mappings',
      operationId: 'listNetworkMappings',
      summary: `Network mappings (${PAGE})`,
      action: 'protection.read',
      response: networkMappingListSchema,
      handler: async ({ query }) => {
        const page = await mappings.listNetwork(pageRequest(query));
        return { body: { networkMappings: page.items, next: page.next } };
      },
    }),
    route({
      method: 'POST',
      path: '/v1/network-mappings',
      operationId: 'createNetworkMapping',
      summary:
        'Map a VM network of a paired primary cloud to a VM network of its recovery cloud (201; 200 for the same mapping again); one mapping per source network',
      action: 'mapping.write',
      body: createNetworkMappingBodySchema,
      response: networkMappingSchema,
      auditObject: ({ body }) => `${body.sourceManagementServerId}/${body.sourceVmNetworkId}`,
      handler: async ({ body }) => {
        const { mapping, created } = await mappings.createNetwork(body);
        return { status: created ? 201 : 200, body: mapping };
      },
    }),
    route({
      method: 'DELETE',
      path: '/v1/network-mappings/:mappingId',
      operationId: 'deleteNetworkMapping',
      summary: 'Delete a network mapping',
      action: 'mapping.write',
      response: mappingDeletedSchema,
      handler: async ({ params }) => {
        const id = mappingId(params);
        await mappings.deleteNetwork(id);
        return { body: { mappingId: id, deleted: true } };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/storage-mappings',
      operationId: 'listStorageMappings',
      summary: `Storage mappings (${PAGE})`,
      action: 'protection.read',
      response: storageMappingListSchema,
      handler: async ({ query }) => {
        const page = await mappings.listStorage(pageRequest(query));
        return { body: { storageMappings: page.items, next: page.next } };
      },
    }),
    route({
      method: 'POST',
      path: '/v1/storage-mappings',
      operationId: 'createStorageMapping',
      summary:
        'Map a storage classification of one management server to one of the recovery management server (201; 200 for the same mapping again); one mapping per source',
      action: 'mapping.write',
      body: createStorageMappingBodySchema,
      response: storageMappingSchema,
      auditObject: ({ body }) => `${body.sourceManagementServerId}/${body.sourceClassification}`,
      handler: async ({ body }) => {
        const { mapping, created } = await mappings.createStorage(body);
        return { status: created ? 201 : 200, body: mapping };
      },
    }),
    route({
      method: 'DELETE',
      path: '/v1/storage-mappings/:mappingId',
      operationId: 'deleteStorageMapping',
      summary: 'Delete a storage mapping',
      action: 'mapping.write',
      response: mappingDeletedSchema,
      handler: async ({ params }) => {
        const id = mappingId(params);
        await mappings.deleteStorage(id);
        return { body: { mappingId: id, deleted: true } };
      },
    }),
  ];
}

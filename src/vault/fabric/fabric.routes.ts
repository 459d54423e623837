/**
 * The fabric routes of the vault's API, spread into the route table by vault-routes.ts: a provider
 * sends its management server's inventory (`provider.inventory`, its own server only), and everyone
 * with a role reads clouds, hosts, VM networks, VMs and storage classifications (`fabric.read`).
 */
import type { Database } from '../../persistence/database.js';
import {
  cloudListSchema,
  cloudViewSchema,
  hostListSchema,
  storageClassificationListSchema,
  vmListSchema,
  vmNetworkListSchema,
} from '../../protocol/vault-api/fabric.schema.js';
import { inventoryAcceptedSchema, inventorySchema } from '../../protocol/vault-api/inventory.schema.js';
import { route, type VaultRoute } from '../http/vault-route.js';
import { FabricReadService, type FabricFilter } from './fabric-read.service.js';
import { InventoryService } from './inventory.service.js';
import { pageRequest, queryText } from './list-query.js';

/** An inventory may be far larger than other request bodies (100 000 VMs at most). */
export const MAX_INVENTORY_BODY_BYTES = 64 * 1024 * 1024;

const param = (params: Readonly<Record<string, string>>, name: string): string => params[name] ?? '';

function filterOf(query: URLSearchParams): FabricFilter {
  const f: { -readonly [K in keyof FabricFilter]: FabricFilter[K] } = {};
  for (const key of ['managementServer', 'cloud', 'name', 'host', 'id'] as const) {
    const v = queryText(query, key);
    if (v !== undefined) f[key] = v;
  }
  return f;
}

const FILTERS =
  "?managementServer=ID|NAME, ?limit=N (1-1000, default 100), ?after=CURSOR (the previous page's next)";

export function fabricRoutes(deps: { readonly db: Database }): VaultRoute[] {
  const inventory = new InventoryService(deps.db);
  const fabric = new FabricReadService(deps.db);
  return [
    route({
      method: 'PUT',
      path: '/v1/management-servers/:managementServerId/inventory',
      operationId: 'putInventory',
      summary:
        "A provider's inventory (its own management server only): replaces the server's fabric when its version is newer than the stored one; an older or equal version is ignored (applied: false)",
      action: 'provider.inventory',
      scope: ({ params }) => param(params, 'managementServerId'),
      body: inventorySchema,
      maxBodyBytes: MAX_INVENTORY_BODY_BYTES,
      response: inventoryAcceptedSchema,
      handler: async ({ params, body }) => ({
        body: await inventory.apply(param(params, 'managementServerId'), body),
      }),
    }),
    route({
      method: 'GET',
      path: '/v1/clouds',
      operationId: 'listClouds',
      summary: `Clouds with their hosts, capacity and pairing (${FILTERS}, ?name=NAME)`,
      action: 'fabric.read',
      response: cloudListSchema,
      handler: async ({ query }) => {
        const page = await fabric.clouds(filterOf(query), pageRequest(query));
        return { body: { clouds: page.items, next: page.next } };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/management-servers/:managementServerId/clouds/:cloudId',
      operationId: 'getCloud',
      summary: 'One cloud of a management server',
      action: 'fabric.read',
      scope: ({ params }) => param(params, 'managementServerId'),
      response: cloudViewSchema,
      handler: async ({ params }) => ({
        body: await fabric.cloud(param(params, 'managementServerId'), param(params, 'cloudId')),
      }),
    }),
    route({
      method: 'GET',
      path: '/v1/hosts',
      operationId: 'listHosts',
      summary: `Hosts with their storage locations and clouds (${FILTERS}, ?cloud=CLOUD_ID)`,
      action: 'fabric.read',
      response: hostListSchema,
      handler: async ({ query }) => {
        const page = await fabric.hosts(filterOf(query), pageRequest(query));
        return { body: { hosts: page.items, next: page.next } };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/vm-networks',
      operationId: 'listVmNetworks',
      summary: `VM networks with their subnets, IP pools and mapping (${FILTERS}, ?cloud=CLOUD_ID, ?name=NAME, ?id=VM_NETWORK_ID)`,
      action: 'fabric.read',
      response: vmNetworkListSchema,
      handler: async ({ query }) => {
        const page = await fabric.vmNetworks(filterOf(query), pageRequest(query));
        return { body: { vmNetworks: page.items, next: page.next } };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/vms',
      operationId: 'listVms',
      summary: `VMs with their placement, disks and NICs (${FILTERS}, ?cloud=CLOUD_ID, ?host=HOST_ID, ?name=NAME)`,
      action: 'fabric.read',
      response: vmListSchema,
      handler: async ({ query }) => {
        const page = await fabric.vms(filterOf(query), pageRequest(query));
        return { body: { vms: page.items, next: page.next } };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/storage-classifications',
      operationId: 'listStorageClassifications',
      summary: `Storage classifications with their capacity and mapping (${FILTERS}, ?name=NAME)`,
      action: 'fabric.read',
      response: storageClassificationListSchema,
      handler: async ({ query }) => {
        const page = await fabric.storageClassifications(filterOf(query), pageRequest(query));
        return { body: { storageClassifications: page.items, next: page.next } };
      },
    }),
  ];
}

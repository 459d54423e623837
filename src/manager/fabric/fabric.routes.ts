/**
 * The fabric on the management server's control socket (docs/design/vault.md section 6), for
 * `secondsite manager host-group|host move|cloud|vm-network|storage|inventory ...`. Creates answer
 * 201 when they made the object and 200 when it existed with the same settings.
 */
import type { Route } from '../../control-api/control-server.js';
import { SecondsiteError } from '../../domain/errors.js';
import type { Logger } from '../../observability/logger.js';
import type { Database } from '../../persistence/database.js';
import type { VaultClient } from '../provider/vault-client.js';
import { CloudsService } from './clouds.service.js';
import {
  classifyStorageBodySchema,
  createCloudBodySchema,
  createHostGroupBodySchema,
  createVmNetworkBodySchema,
  moveHostBodySchema,
  parseBody,
} from './fabric-api.schema.js';
import { HostGroupsService } from './host-groups.service.js';
import { InventorySync } from './inventory-sync.js';
import { InventoryService } from './inventory.service.js';
import { StorageClassificationsService } from './storage-classifications.service.js';
import { VmNetworksService } from './vm-networks.service.js';

export interface Fabric {
  readonly hostGroups: HostGroupsService;
  readonly clouds: CloudsService;
  readonly vmNetworks: VmNetworksService;
  readonly storage: StorageClassificationsService;
  readonly inventory: InventoryService;
  /** Null when the server has no vault session (tests of the fabric alone). */
  readonly sync: InventorySync | null;
}

export interface FabricDeps {
  readonly db: Database;
  readonly dataDir: string;
  readonly managementServerName: string;
  readonly log: Logger;
  /** The provider's vault client and management server id, to send the inventory. */
  readonly vault?: { readonly client: VaultClient; readonly managementServerId: string };
}

export function createFabric(deps: FabricDeps): Fabric {
  const inventory = new InventoryService(deps.db, deps.dataDir, deps.managementServerName, deps.log);
  return {
    hostGroups: new HostGroupsService(deps.db),
    clouds: new CloudsService(deps.db),
    vmNetworks: new VmNetworksService(deps.db),
    storage: new StorageClassificationsService(deps.db),
    inventory,
    sync: deps.vault
      ? new InventorySync(
          inventory,
          deps.vault.client,
          deps.vault.managementServerId,
          deps.log.child({ component: 'inventory' }),
        )
      : null,
  };
}

const created = <V extends { created: boolean }>(v: V): { status: number; body: V } => ({
  status: v.created ? 201 : 200,
  body: v,
});

function syncOf(f: Fabric): InventorySync {
  if (!f.sync) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_STATE',
      'this management server has no session with a vault; register it first (secondsite manager register)',
    );
  }
  return f.sync;
}

export function fabricRoutes(f: Fabric): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/host-groups',
      handler: async () => ({ body: { hostGroups: await f.hostGroups.list() } }),
    },
    {
      method: 'POST',
      path: '/v1/host-groups',
      handler: async (req) => {
        const b = parseBody(createHostGroupBodySchema, req.body);
        return created(await f.hostGroups.create(b.name, b.parent));
      },
    },
    {
      method: 'DELETE',
      path: '/v1/host-groups/:name',
      handler: async (req) => ({ body: await f.hostGroups.delete(req.params['name'] ?? '') }),
    },
    {
      method: 'PUT',
      path: '/v1/hosts/:hostId/host-group',
      handler: async (req) => {
        const b = parseBody(moveHostBodySchema, req.body);
        return { body: await f.hostGroups.moveHost(req.params['hostId'] ?? '', b.hostGroup) };
      },
    },
    { method: 'GET', path: '/v1/clouds', handler: async () => ({ body: { clouds: await f.clouds.list() } }) },
    {
      method: 'POST',
      path: '/v1/clouds',
      handler: async (req) => {
        const b = parseBody(createCloudBodySchema, req.body);
        return created(await f.clouds.create(b.name, b.hostGroups, b.capacity));
      },
    },
    {
      method: 'GET',
      path: '/v1/clouds/:name',
      handler: async (req) => ({ body: await f.clouds.get(req.params['name'] ?? '') }),
    },
    {
      method: 'DELETE',
      path: '/v1/clouds/:name',
      handler: async (req) => ({ body: await f.clouds.delete(req.params['name'] ?? '') }),
    },
    {
      method: 'GET',
      path: '/v1/vm-networks',
      handler: async () => ({ body: { vmNetworks: await f.vmNetworks.list() } }),
    },
    {
      method: 'POST',
      path: '/v1/vm-networks',
      handler: async (req) => {
        const b = parseBody(createVmNetworkBodySchema, req.body);
        return created(await f.vmNetworks.create(b.name, b.clouds, b.subnets));
      },
    },
    {
      method: 'GET',
      path: '/v1/vm-networks/:name',
      handler: async (req) => ({ body: await f.vmNetworks.get(req.params['name'] ?? '') }),
    },
    {
      method: 'DELETE',
      path: '/v1/vm-networks/:name',
      handler: async (req) => ({ body: await f.vmNetworks.delete(req.params['name'] ?? '') }),
    },
    {
      method: 'GET',
      path: '/v1/storage-locations',
      handler: async () => ({ body: { storageLocations: await f.storage.list() } }),
    },
    {
      method: 'PUT',
      path: '/v1/storage-locations/classification',
      handler: async (req) => {
        const b = parseBody(classifyStorageBodySchema, req.body);
        return { body: await f.storage.classify(b.hostId, b.location, b.classification) };
      },
    },
    { method: 'GET', path: '/v1/inventory', handler: async () => ({ body: await f.inventory.document() }) },
    {
      method: 'POST',
      path: '/v1/inventory/sync',
      handler: async () => ({ body: await syncOf(f).sendNow() }),
    },
    {
      method: 'GET',
      path: '/v1/inventory/sync',
      handler: async () => ({ body: await syncOf(f).status() }),
    },
  ];
}

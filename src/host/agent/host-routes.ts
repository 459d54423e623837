/**
 * The host agent's control API routes, by area. Handlers validate bodies with the protocol schemas and
 * call the services; every error is a SecondsiteError whose code and message reach the CLI unchanged.
 */
import { SecondsiteError } from '../../domain/errors.js';
import { createDiskBodySchema, resizeDiskBodySchema } from '../../protocol/host-api/disks.schema.js';
import {
  enableReplicationBodySchema,
  resumeReplicationBodySchema,
  exportDiskBodySchema,
  importReplicaBodySchema,
  seedReplicaBodySchema,
} from '../../protocol/host-api/relationships.schema.js';
import { parseBody } from '../../protocol/host-api/schema.js';
import {
  changePointBodySchema,
  createVmBodySchema,
  failoverBodySchema,
  shutdownVmBodySchema,
  testFailoverBodySchema,
} from '../../protocol/host-api/vms.schema.js';
import type { Route } from '../../control-api/control-server.js';
import type { AuthorizationService } from './authorization-service.js';
import type { DiskService } from './disk-service.js';
import type { RelationshipDefinition, RelationshipService } from './relationship-service.js';
import type { ReplicaService } from './replica-service.js';
import type { VmService } from './vm-service.js';
import type { FailoverService } from '../failover/failover-service.js';
import { preparePlannedFailover } from '../failover/planned-failover.js';
import { seedReplicaFromLocalDisks, type ReverseDeps } from '../failover/reverse-replication.js';

const param = (params: Record<string, string>, name: string): string => params[name] ?? '';

export function diskRoutes(disks: () => DiskService, relationships: () => RelationshipService): Route[] {
  return [
    { method: 'GET', path: '/v1/disks', handler: async () => ({ body: { disks: await disks().list() } }) },
    {
      method: 'GET',
      path: '/v1/disks/:diskId',
      handler: async ({ params }) => ({ body: await disks().get(param(params, 'diskId')) }),
    },
    {
      method: 'POST',
      path: '/v1/disks',
      handler: async ({ body }) => {
        const b = parseBody(createDiskBodySchema, body, 'disk');
        const r = await disks().create(b.diskId, b.name ?? b.diskId, b.sizeBytes);
        return { status: r.created ? 201 : 200, body: r.disk };
      },
    },
    {
      method: 'POST',
      path: '/v1/disks/:diskId/resize',
      handler: async ({ params, body }) => {
        const b = parseBody(resizeDiskBodySchema, body, 'resize request');
        return { body: await disks().resize(param(params, 'diskId'), b.sizeBytes, b.force) };
      },
    },
    {
      method: 'POST',
      path: '/v1/disks/:diskId/export',
      handler: async ({ params, body }) => {
        const b = parseBody(exportDiskBodySchema, body, 'export request');
        return { body: await disks().exportImage(param(params, 'diskId'), b.toDir) };
      },
    },
    {
      method: 'DELETE',
      path: '/v1/disks/:diskId',
      handler: async ({ params }) => {
        const diskId = param(params, 'diskId');
        const rel = relationships().relationshipOfDisk(diskId);
        if (rel) {
          throw new SecondsiteError(
            'SECONDSITE_ERR_INVALID_STATE',
            `disk '${diskId}' replicates in relationship '${rel}'; disable replication first`,
            { diskId, relationshipId: rel },
          );
        }
        return { body: { deleted: await disks().delete(diskId) } };
      },
    },
  ];
}

export function relationshipRoutes(
  relationships: () => RelationshipService,
  /** Deletes the replica on the replica host (peer API); true when it was there. */
  deleteReplica: (definition: RelationshipDefinition) => Promise<boolean>,
): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/relationships',
      handler: () => Promise.resolve({ body: { relationships: relationships().list() } }),
    },
    {
      method: 'GET',
      path: '/v1/relationships/:id',
      handler: ({ params }) => Promise.resolve({ body: relationships().get(param(params, 'id')) }),
    },
    {
      method: 'POST',
      path: '/v1/relationships',
      handler: async ({ body }) => {
        const r = await relationships().enable(
          parseBody(enableReplicationBodySchema, body, 'replication settings'),
        );
        return { status: r.created ? 201 : 200, body: r.view };
      },
    },
    {
      method: 'POST',
      path: '/v1/relationships/:id/pause',
      handler: async ({ params }) => ({ body: await relationships().pause(param(params, 'id')) }),
    },
    {
      method: 'POST',
      path: '/v1/relationships/:id/resume',
      handler: async ({ params, body }) => {
        const b = parseBody(resumeReplicationBodySchema, body ?? {}, 'resume request');
        return { body: await relationships().resume(param(params, 'id'), b) };
      },
    },
    {
      method: 'GET',
      path: '/v1/relationships/:id/measure',
      handler: ({ params }) => Promise.resolve({ body: relationships().measure(param(params, 'id')) }),
    },
    {
      method: 'POST',
      path: '/v1/relationships/:id/resync',
      handler: async ({ params }) => ({ body: await relationships().resync(param(params, 'id')) }),
    },
    {
      method: 'DELETE',
      path: '/v1/relationships/:id',
      handler: async ({ params, query }) => {
        const id = param(params, 'id');
        const definition = relationships()
          .list()
          .find((v) => v.definition.relationshipId === id)?.definition;
        const disabled = await relationships().disable(id);
        if (query.get('deleteReplica') !== 'true' || !definition) return { body: { disabled } };
        try {
          return { body: { disabled, replicaDeleted: await deleteReplica(definition) } };
        } catch (e) {
          throw new SecondsiteError(
            'SECONDSITE_ERR_INVALID_STATE',
            `replication of ${id} is disabled, but its replica on ${definition.replica.hostId} was not deleted: ${(e as Error).message}; delete it there with 'secondsite host replica delete ${id}'`,
            { relationshipId: id, disabled },
          );
        }
      },
    },
  ];
}

export function replicaRoutes(replicas: () => ReplicaService): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/replicas',
      handler: async () => ({ body: { replicas: await replicas().list() } }),
    },
    {
      method: 'GET',
      path: '/v1/replicas/:id',
      handler: async ({ params }) => ({ body: await replicas().get(param(params, 'id')) }),
    },
    {
      method: 'POST',
      path: '/v1/replicas/:id/import',
      handler: async ({ params, body }) => {
        const b = parseBody(importReplicaBodySchema, body, 'import request');
        return { body: await replicas().importImages(param(params, 'id'), b) };
      },
    },
    {
      method: 'POST',
      path: '/v1/replicas/:id/points/:pointId/export',
      handler: async ({ params }) => ({
        body: await replicas().exportPoint(param(params, 'id'), param(params, 'pointId')),
      }),
    },
    {
      method: 'DELETE',
      path: '/v1/replicas/:id/points/:pointId/export',
      handler: async ({ params }) => ({
        body: { unexported: await replicas().unexportPoint(param(params, 'id'), param(params, 'pointId')) },
      }),
    },
  ];
}

export function vmRoutes(vms: () => VmService): Route[] {
  return [
    { method: 'GET', path: '/v1/vms', handler: async () => ({ body: { vms: await vms().list() } }) },
    {
      method: 'GET',
      path: '/v1/vms/:vmId',
      handler: async ({ params }) => ({ body: await vms().status(param(params, 'vmId')) }),
    },
    {
      method: 'POST',
      path: '/v1/vms',
      handler: async ({ body }) => {
        const r = await vms().create(parseBody(createVmBodySchema, body, 'VM definition'));
        return { status: r.created ? 201 : 200, body: r.status };
      },
    },
    {
      method: 'POST',
      path: '/v1/vms/:vmId/start',
      handler: async ({ params }) => ({ body: await vms().start(param(params, 'vmId')) }),
    },
    {
      method: 'POST',
      path: '/v1/vms/:vmId/shutdown',
      handler: async ({ params, body }) => {
        const b = parseBody(shutdownVmBodySchema, body ?? {}, 'shutdown request');
        return { body: await vms().shutdown(param(params, 'vmId'), b.timeoutMs) };
      },
    },
    {
      method: 'POST',
      path: '/v1/vms/:vmId/power-off',
      handler: async ({ params }) => ({ body: await vms().powerOff(param(params, 'vmId')) }),
    },
    {
      method: 'DELETE',
      path: '/v1/vms/:vmId',
      handler: async ({ params }) => ({ body: { removed: await vms().remove(param(params, 'vmId')) } }),
    },
  ];
}

export function failoverRoutes(failovers: () => FailoverService, replicas: () => ReplicaService): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/failovers',
      handler: () => Promise.resolve({ body: { failovers: failovers().list() } }),
    },
    {
      method: 'GET',
      path: '/v1/replicas/:id/failover',
      handler: ({ params }) => Promise.resolve({ body: failovers().get(param(params, 'id')) }),
    },
    {
      method: 'DELETE',
      path: '/v1/replicas/:id',
      handler: async ({ params }) => {
        const id = param(params, 'id');
        return { body: { deleted: await replicas().delete(id, failovers().deleteRefusal(id)) } };
      },
    },
    {
      method: 'POST',
      path: '/v1/replicas/:id/test-failover',
      handler: async ({ params, body }) => {
        const b = parseBody(testFailoverBodySchema, body ?? {}, 'test failover request');
        return { body: await failovers().testFailover(param(params, 'id'), b) };
      },
    },
    {
      method: 'DELETE',
      path: '/v1/replicas/:id/test-failover',
      handler: async ({ params }) => ({ body: await failovers().testCleanup(param(params, 'id')) }),
    },
    {
      method: 'POST',
      path: '/v1/replicas/:id/failover',
      handler: async ({ params, body }) => {
        const b = parseBody(failoverBodySchema, body ?? {}, 'failover request');
        return { body: await failovers().failover(param(params, 'id'), b) };
      },
    },
    {
      method: 'POST',
      path: '/v1/replicas/:id/failover/change-point',
      handler: async ({ params, body }) => {
        const b = parseBody(changePointBodySchema, body, 'change recovery point request');
        return { body: await failovers().changePoint(param(params, 'id'), b.pointId) };
      },
    },
    {
      method: 'POST',
      path: '/v1/replicas/:id/failover/commit',
      handler: async ({ params }) => ({ body: await failovers().commit(param(params, 'id')) }),
    },
    {
      method: 'POST',
      path: '/v1/replicas/:id/failover/cancel',
      handler: async ({ params }) => ({ body: await failovers().cancel(param(params, 'id')) }),
    },
  ];
}

export function plannedFailoverRoutes(
  vms: () => VmService,
  relationships: () => RelationshipService,
): Route[] {
  return [
    {
      method: 'POST',
      path: '/v1/relationships/:id/prepare-failover',
      handler: async ({ params, body }) => {
        const b = parseBody(shutdownVmBodySchema, body ?? {}, 'planned failover request');
        return {
          body: await preparePlannedFailover(vms(), relationships(), param(params, 'id'), b.timeoutMs),
        };
      },
    },
  ];
}

export function reverseReplicationRoutes(deps: () => ReverseDeps): Route[] {
  return [
    {
      method: 'POST',
      path: '/v1/replicas/:id/seed',
      handler: async ({ params, body }) => {
        const b = parseBody(seedReplicaBodySchema, body, 'seed request');
        return { body: await seedReplicaFromLocalDisks(deps(), param(params, 'id'), b) };
      },
    },
  ];
}

/** This host's authorization list: host.json's entries and the managed part (authorization-service.ts). */
export function authorizationRoutes(authorization: () => AuthorizationService): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/authorization',
      handler: () => Promise.resolve({ body: authorization().view() }),
    },
    {
      method: 'PUT',
      path: '/v1/authorization',
      handler: async ({ body }) => ({ body: await authorization().replace(body) }),
    },
  ];
}

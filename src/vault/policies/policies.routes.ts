/**
 * The replication policy routes of the vault's API (`/v1/policies`), spread into the route table by
 * vault-routes.ts. Reading needs `protection.read`, every change `policy.write` (Contributor, Owner).
 * Policies are vault-wide objects: no management server scope, so no machine principal may touch them.
 */
import type { Database } from '../../persistence/database.js';
import {
  createPolicyBodySchema,
  policyDeletedSchema,
  policyListSchema,
  policySchema,
  updatePolicyBodySchema,
} from '../../protocol/vault-api/policies.schema.js';
import { route, type VaultRoute } from '../http/vault-route.js';
import { PoliciesService } from './policies.service.js';

const policyName = (params: Readonly<Record<string, string>>): string => params['policyName'] ?? '';

/** The routes; the service is built here on the vault's database (nothing is queried until a request). */
export function policyRoutes(deps: { readonly db: Database }): VaultRoute[] {
  const policies = new PoliciesService(deps.db);
  return [
    route({
      method: 'GET',
      path: '/v1/policies',
      operationId: 'listPolicies',
      summary: 'Replication policies, by name',
      action: 'protection.read',
      response: policyListSchema,
      handler: async () => ({ body: { policies: await policies.list() } }),
    }),
    route({
      method: 'GET',
      path: '/v1/policies/:policyName',
      operationId: 'getPolicy',
      summary: 'One replication policy',
      action: 'protection.read',
      response: policySchema,
      handler: async ({ params }) => ({ body: await policies.get(policyName(params)) }),
    }),
    route({
      method: 'POST',
      path: '/v1/policies',
      operationId: 'createPolicy',
      summary:
        'Create a replication policy (201; 200 when one of that name exists with the same settings, ALREADY_EXISTS with others)',
      action: 'policy.write',
      body: createPolicyBodySchema,
      response: policySchema,
      auditObject: ({ body }) => body.name,
      handler: async ({ body }) => {
        const { name, ...settings } = body;
        const { policy, created } = await policies.create(name, settings);
        return { status: created ? 201 : 200, body: policy };
      },
    }),
    route({
      method: 'PUT',
      path: '/v1/policies/:policyName',
      operationId: 'updatePolicy',
      summary: 'Change a replication policy: fields not given keep their values; renaming is refused',
      action: 'policy.write',
      body: updatePolicyBodySchema,
      response: policySchema,
      handler: async ({ params, body }) => ({ body: await policies.update(policyName(params), body) }),
    }),
    route({
      method: 'DELETE',
      path: '/v1/policies/:policyName',
      operationId: 'deletePolicy',
      summary: 'Delete a replication policy',
      action: 'policy.write',
      response: policyDeletedSchema,
      handler: async ({ params }) => {
        const name = policyName(params);
        await policies.delete(name);
        return { body: { name, deleted: true } };
      },
    }),
  ];
}

/**
 * The vault's REST API route table (docs/design/vault.md). Each route names its action; the server
 * authenticates, authorizes, validates and audits before a handler runs.
 */
import { z } from 'zod/v4';
import type { Principal } from '../domain/vault/rbac.js';
import type { Database } from '../persistence/database.js';
import {
  alertSchema,
  auditEntrySchema,
  certificateRenewalRequestSchema,
  certificateRenewalResultSchema,
  createRegistrationKeyBodySchema,
  createTokenBodySchema,
  createUserBodySchema,
  heartbeatBodySchema,
  heartbeatResultSchema,
  managementServerSchema,
  registrationKeyFileSchema,
  registrationRequestSchema,
  registrationResultSchema,
  tokenCreatedSchema,
  userSchema,
} from '../protocol/vault-api/vault-api.schema.js';
import { listAudit } from './audit/audit-log.js';
import { commandRoutes } from './commands/commands.routes.js';
import type { CommandChannel } from './commands/provider-commands.js';
import { fabricRoutes } from './fabric/fabric.routes.js';
import type { ManagementServersService } from './fabric/management-servers.service.js';
import { openApiDocument } from './http/openapi.js';
import { route, type VaultRoute } from './http/vault-route.js';
import type { VaultIdentity } from './identity/vault-identity.js';
import { jobRoutes } from './jobs/jobs.routes.js';
import { protectionRoutes } from './protection/protection.routes.js';
import type { JobsService } from './jobs/jobs.service.js';
import { listAlerts } from './monitoring/alerts.js';
import { mappingRoutes } from './mappings/mappings.routes.js';
import { pairingRoutes } from './pairings/pairings.routes.js';
import { policyRoutes } from './policies/policies.routes.js';
import type { RegistrationService } from './registration/registration.service.js';
import type { UsersService } from './users/users.service.js';
import { principalName } from '../domain/vault/rbac.js';

export const VAULT_API_VERSION = '0.1.0';

export interface VaultRouteDeps {
  readonly db: Database;
  readonly identity: VaultIdentity;
  readonly users: UsersService;
  readonly registration: RegistrationService;
  readonly managementServers: ManagementServersService;
  readonly jobs: JobsService;
  readonly commands: CommandChannel;
  readonly heartbeatIntervalSeconds: number;
  readonly metrics: () => string;
}

const param = (params: Readonly<Record<string, string>>, name: string): string => params[name] ?? '';

function limitOf(query: URLSearchParams, fallback: number): number {
  const n = Number(query.get('limit') ?? fallback);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1000) : fallback;
}

export function vaultRoutes(deps: VaultRouteDeps): VaultRoute[] {
  const routes: VaultRoute[] = [
    route({
      method: 'GET',
      path: '/healthz',
      operationId: 'health',
      summary: 'Liveness and database reachability',
      action: 'public',
      handler: async () => {
        await deps.db.query('SELECT 1');
        return { body: { status: 'ok' } };
      },
    }),
    route({
      method: 'GET',
      path: '/openapi.json',
      operationId: 'openApi',
      summary: 'This document',
      action: 'public',
      handler: () => Promise.resolve({ body: openApiDocument(routes, VAULT_API_VERSION) }),
    }),
    route({
      method: 'GET',
      path: '/metrics',
      operationId: 'metrics',
      summary: 'Prometheus metrics',
      action: 'vault.read',
      handler: () => Promise.resolve({ body: deps.metrics(), contentType: 'text/plain; version=0.0.4' }),
    }),
    route({
      method: 'GET',
      path: '/v1/vault',
      operationId: 'getVault',
      summary: 'The vault: id, name, API version, and who is asking',
      action: 'vault.read',
      response: z.object({
        vaultId: z.string(),
        name: z.string(),
        apiVersion: z.string(),
        caller: z.string(),
      }),
      handler: ({ principal }) =>
        Promise.resolve({
          body: {
            vaultId: deps.identity.vaultId,
            name: deps.identity.name,
            apiVersion: VAULT_API_VERSION,
            caller: principalName(principal as Principal),
          },
        }),
    }),
    // ---- users and tokens ----
    route({
      method: 'GET',
      path: '/v1/users',
      operationId: 'listUsers',
      summary: 'Users and their roles',
      action: 'user.read',
      response: z.object({ users: z.array(userSchema) }),
      handler: async () => ({ body: { users: await deps.users.list() } }),
    }),
    route({
      method: 'POST',
      path: '/v1/users',
      operationId: 'createUser',
      summary: 'Create a user with a role (idempotent for the same name and role)',
      action: 'user.write',
      body: createUserBodySchema,
      response: userSchema,
      auditObject: ({ body }) => body.name,
      handler: async ({ body }) => ({ status: 201, body: await deps.users.create(body.name, body.role) }),
    }),
    route({
      method: 'POST',
      path: '/v1/users/:userName/tokens',
      operationId: 'createToken',
      summary: 'Create an API token for a user (shown once)',
      action: 'user.write',
      body: createTokenBodySchema,
      response: tokenCreatedSchema,
      handler: async ({ params, body }) => {
        const user = await deps.users.byName(param(params, 'userName'));
        return {
          status: 201,
          body: await deps.users.createToken(user.userId, body.label, body.expiresInDays),
        };
      },
    }),
    // ---- registration ----
    route({
      method: 'POST',
      path: '/v1/registration-keys',
      operationId: 'createRegistrationKey',
      summary: 'Create a registration key (single use, newest only, expires); older unused keys stop working',
      action: 'registration-key.write',
      body: createRegistrationKeyBodySchema,
      response: registrationKeyFileSchema,
      handler: async ({ principal, body }) => ({
        status: 201,
        body: await deps.registration.createKey(principalName(principal as Principal), body.expiresInHours),
      }),
    }),
    route({
      method: 'POST',
      path: '/v1/registrations',
      operationId: 'registerProvider',
      summary: "Register a management server's provider with a registration key; returns its certificate",
      action: 'public',
      body: registrationRequestSchema,
      response: registrationResultSchema,
      auditObject: ({ body }) => `${body.managementServerName}/${body.nodeName}`,
      handler: async ({ body }) => ({
        status: 201,
        body: await deps.registration.register(body, deps.heartbeatIntervalSeconds),
      }),
    }),
    // ---- management servers ----
    route({
      method: 'GET',
      path: '/v1/management-servers',
      operationId: 'listManagementServers',
      summary: 'Registered management servers, their nodes and connection state',
      action: 'fabric.read',
      response: z.object({ managementServers: z.array(managementServerSchema) }),
      handler: async () => ({ body: { managementServers: await deps.managementServers.list() } }),
    }),
    route({
      method: 'GET',
      path: '/v1/management-servers/:managementServerId',
      operationId: 'getManagementServer',
      summary: 'One management server',
      action: 'fabric.read',
      scope: ({ params }) => param(params, 'managementServerId'),
      response: managementServerSchema,
      handler: async ({ params }) => ({
        body: await deps.managementServers.get(param(params, 'managementServerId')),
      }),
    }),
    route({
      method: 'POST',
      path: '/v1/management-servers/:managementServerId/heartbeat',
      operationId: 'providerHeartbeat',
      summary: "A provider's heartbeat (its own management server only)",
      action: 'provider.heartbeat',
      audit: false,
      scope: ({ params }) => param(params, 'managementServerId'),
      body: heartbeatBodySchema,
      response: heartbeatResultSchema,
      handler: async ({ params, principal, body }) => {
        const p = principal as Principal;
        const answer = await deps.managementServers.heartbeat(
          param(params, 'managementServerId'),
          p.kind === 'provider' ? p.nodeName : '',
          body.providerVersion,
        );
        return { body: { ...answer, serverTime: new Date().toISOString() } };
      },
    }),
    route({
      method: 'POST',
      path: '/v1/management-servers/:managementServerId/certificate',
      operationId: 'renewProviderCertificate',
      summary:
        "A provider renews its node's certificate (its own management server only); the new one replaces the old at its first use",
      action: 'provider.certificate',
      scope: ({ params }) => param(params, 'managementServerId'),
      body: certificateRenewalRequestSchema,
      response: certificateRenewalResultSchema,
      handler: async ({ params, principal, body }) => {
        const p = principal as Principal;
        if (p.kind !== 'provider') throw new Error('provider.certificate reached by a user');
        return {
          status: 201,
          body: await deps.registration.renew(
            param(params, 'managementServerId'),
            p.nodeName,
            p.certSerial,
            body.csrPem,
          ),
        };
      },
    }),
    // ---- alerts and audit ----
    route({
      method: 'GET',
      path: '/v1/alerts',
      operationId: 'listAlerts',
      summary: 'Alerts, newest first (?all=true includes resolved ones)',
      action: 'alert.read',
      response: z.object({ alerts: z.array(alertSchema) }),
      handler: async ({ query }) => ({
        body: { alerts: await listAlerts(deps.db, { openOnly: query.get('all') !== 'true' }) },
      }),
    }),
    route({
      method: 'GET',
      path: '/v1/audit',
      operationId: 'listAudit',
      summary: 'The audit log, newest first (?limit=N, at most 1000)',
      action: 'audit.read',
      response: z.object({ entries: z.array(auditEntrySchema) }),
      handler: async ({ query }) => ({ body: { entries: await listAudit(deps.db, limitOf(query, 100)) } }),
    }),
    ...policyRoutes(deps),
    ...fabricRoutes(deps),
    ...pairingRoutes(deps),
    ...mappingRoutes(deps),
    ...jobRoutes(deps),
    ...commandRoutes(deps),
    ...protectionRoutes(deps),
  ];
  return routes;
}

/**
 * The OpenAPI 3.1 document of the vault's API, generated from the route table: paths, the action and
 * roles each needs, request bodies and responses from the same zod schemas that validate them.
 */
import { z } from 'zod/v4';
import { rolesAllowing } from '../../domain/vault/rbac.js';
import { errorBodySchema } from '../../protocol/vault-api/vault-api.schema.js';
import type { VaultRoute } from './vault-route.js';

type Json = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Json {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Json;
  return rest;
}

export function openApiDocument(routes: readonly VaultRoute[], version: string): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const r of routes) {
    const path = r.path.replace(/:([A-Za-z]+)/g, '{$1}');
    const params = [...r.path.matchAll(/:([A-Za-z]+)/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    const security = r.action === 'public' ? [] : [{ bearerToken: [] }, { providerCertificate: [] }];
    const op: Json = {
      operationId: r.operationId,
      summary: r.summary,
      description:
        r.action === 'public'
          ? 'No credentials needed.'
          : `Action \`${r.action}\`; roles: ${rolesAllowing(r.action).join(', ') || 'none (machine principals only)'}.`,
      security,
      ...(params.length ? { parameters: params } : {}),
      ...(r.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: jsonSchema(r.body, 'input') } },
            },
          }
        : {}),
      responses: {
        '200': {
          description: 'OK',
          ...(r.response
            ? { content: { 'application/json': { schema: jsonSchema(r.response, 'output') } } }
            : {}),
        },
        default: {
          description: 'An error: a stable code and a message that says what to do.',
          content: { 'application/json': { schema: jsonSchema(errorBodySchema, 'output') } },
        },
      },
    };
    (paths[path] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'secondsite vault API',
      version,
      description: 'Disaster recovery of VMs between two sites: the control plane. See docs/design/vault.md.',
    },
    components: {
      securitySchemes: {
        bearerToken: { type: 'http', scheme: 'bearer', description: 'API token: ss_tok_..._...' },
        providerCertificate: { type: 'mutualTLS', description: 'client certificate issued at registration' },
      },
    },
    paths,
  };
}

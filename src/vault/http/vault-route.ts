/**
 * A route of the vault's REST API: method, path, the action it performs (domain/vault/rbac.ts), the
 * request body's schema, and the handler. The route table is the one source of the server's dispatch,
 * the OpenAPI document and the generated authorization and bad-input tests.
 */
import type { z } from 'zod/v4';
import type { Action, Principal } from '../../domain/vault/rbac.js';

export interface VaultRequest<B> {
  readonly principal: Principal | null;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly body: B;
  readonly requestId: string;
  /** Aborted when the client goes away before the answer (a long-poll then stops waiting). */
  readonly signal: AbortSignal;
}

export interface VaultResponse {
  readonly status?: number;
  readonly body: unknown;
  /** Plain text (e.g. Prometheus) instead of JSON. */
  readonly contentType?: string;
}

export interface VaultRoute<B = unknown> {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** `/v1/management-servers/:managementServerId`: `:name` segments become params. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  /**
   * The action the caller must be allowed; 'public' routes need no principal (health, the OpenAPI
   * document, registration, which the registration key itself authenticates).
   */
  readonly action: Action | 'public';
  readonly body?: z.ZodType<B>;
  readonly response?: z.ZodType;
  /** The largest request body taken (default MAX_VAULT_BODY_BYTES, 1 MiB; inventories are bigger). */
  readonly maxBodyBytes?: number;
  /**
   * The management server the object belongs to (for machine principals' scope); undefined for
   * vault-wide objects. Runs after authentication, before the body is read (it sees the path and
   * query only): a principal of another site never makes the vault buffer a body.
   */
  readonly scope?: (
    req: Pick<VaultRequest<unknown>, 'principal' | 'params' | 'query'>,
  ) => Promise<string | undefined> | string | undefined;
  /** The audited object when the path does not name it (e.g. the name in a create body). */
  readonly auditObject?: (req: VaultRequest<B>) => string | null;
  /** Mutating routes are audited unless this is false (heartbeats: frequent, and nobody's decision). */
  readonly audit?: boolean;
  readonly handler: (req: VaultRequest<B>) => Promise<VaultResponse>;
}

/** Keeps the body type of a route while putting routes of different bodies in one table. */
export function route<B>(r: VaultRoute<B>): VaultRoute {
  return r as unknown as VaultRoute;
}

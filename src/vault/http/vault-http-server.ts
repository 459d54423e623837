/**
 * The vault's HTTPS server (docs/design/vault.md section 2). One listener for users (bearer tokens)
 * and providers (client certificates of the vault CA): the TLS layer asks for a certificate but does
 * not require one; `authenticate` decides. For every request, in this order: route match (404/405),
 * authentication (401), body size and JSON (400), the action (403), the object's scope (403), the body
 * schema (400), the handler; a mutating request is appended to the audit log with its outcome.
 * Errors are `{ error: { code, message, retry, details } }` with the registry's status; nothing
 * unexpected leaks more than its message, and every response carries an `x-request-id`.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { SecondsiteError, isSecondsiteError } from '../../domain/errors.js';
import { allows, authorize, principalName, type Principal } from '../../domain/vault/rbac.js';
import { compileRoutePath, routeParams, type RoutePattern } from '../../protocol/http/route-path.js';
import type { ServerTls } from '../identity/vault-identity.js';
import type { VaultRequest, VaultRoute } from './vault-route.js';

export const MAX_VAULT_BODY_BYTES = 1024 * 1024;

export interface AuditEntry {
  readonly principal: string;
  readonly action: string;
  readonly object: string | null;
  readonly outcome: string;
  readonly requestId: string;
}

export interface VaultHttpDeps {
  readonly routes: readonly VaultRoute[];
  /** The caller, or null when it presented nothing; throws SECONDSITE_ERR_UNAUTHORIZED for bad credentials. */
  readonly authenticate: (req: IncomingMessage, socket: TLSSocket) => Promise<Principal | null>;
  readonly audit: (entry: AuditEntry) => Promise<void>;
  readonly onError: (e: unknown, path: string) => void;
}

interface Compiled {
  route: VaultRoute;
  pattern: RoutePattern;
}

export class VaultHttpServer {
  private readonly compiled: Compiled[];
  private server: Server | null = null;

  constructor(private readonly deps: VaultHttpDeps) {
    this.compiled = deps.routes.map((route) => ({ route, pattern: compileRoutePath(route.path) }));
  }

  async listen(tls: ServerTls, host: string, port: number): Promise<number> {
    const server = createServer(
      {
        key: tls.keyPem,
        cert: tls.certPem,
        ca: tls.caCertPem,
        requestCert: true,
        rejectUnauthorized: false,
        minVersion: 'TLSv1.2',
      },
      (req, res) => {
        this.handle(req, res).catch((e: unknown) => {
          this.deps.onError(e, req.url ?? '');
          if (!res.headersSent)
            sendError(res, new SecondsiteError('SECONDSITE_ERR_INTERNAL', 'internal error'), '');
        });
      },
    );
    server.headersTimeout = 20_000;
    server.requestTimeout = 120_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    res.setHeader('x-request-id', requestId);
    const url = new URL(req.url ?? '/', 'https://vault');
    const matching = this.compiled
      .map((c) => ({ c, m: c.pattern.regex.exec(url.pathname) }))
      .filter((x): x is { c: Compiled; m: RegExpExecArray } => x.m !== null);
    if (matching.length === 0) {
      req.resume();
      return sendError(
        res,
        new SecondsiteError('SECONDSITE_ERR_NOT_FOUND', `no API route ${url.pathname}; see /openapi.json`),
        requestId,
      );
    }
    const hit = matching.find((x) => x.c.route.method === req.method);
    if (!hit) {
      req.resume();
      const allowed = matching.map((x) => x.c.route.method).join(', ');
      res.setHeader('allow', allowed);
      return sendError(
        res,
        new SecondsiteError(
          'SECONDSITE_ERR_METHOD_NOT_ALLOWED',
          `${req.method ?? '?'} is not allowed on ${url.pathname}; use ${allowed}`,
        ),
        requestId,
      );
    }
    const route = hit.c.route;
    let principal: Principal | null = null;
    let object: string | null = null;
    try {
      const params = routeParams(hit.c.pattern, hit.m);
      object = Object.values(params).join('/') || null;
      principal = await this.deps.authenticate(req, req.socket as TLSSocket);
      if (route.action !== 'public' && principal === null) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_UNAUTHORIZED',
          "no credentials: send 'Authorization: Bearer <API token>' (secondsite vault token create), or a provider certificate",
        );
      }
      if (route.action !== 'public' && principal) {
        // refused before the body is read (discarded unread): a caller without the action, or a
        // provider asking for another site's object, never makes the vault buffer a body (the
        // inventory route takes big ones)
        try {
          if (!allows(principal, route.action)) authorize(principal, route.action);
          authorize(
            principal,
            route.action,
            await route.scope?.({ principal, params, query: url.searchParams }),
          );
        } catch (e) {
          req.resume();
          throw e;
        }
      }
      const raw = await readJson(req, route.maxBodyBytes ?? MAX_VAULT_BODY_BYTES);
      const gone = new AbortController();
      res.once('close', () => {
        if (!res.writableFinished) gone.abort(new Error('the client went away'));
      });
      const base: VaultRequest<unknown> = {
        principal,
        params,
        query: url.searchParams,
        body: raw,
        requestId,
        signal: gone.signal,
      };
      let body: unknown = raw;
      if (route.body) {
        const parsed = route.body.safeParse(raw ?? {});
        if (!parsed.success) {
          const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`);
          throw new SecondsiteError(
            'SECONDSITE_ERR_INVALID_ARGUMENT',
            `invalid request body: ${problems.join('; ')}`,
            {
              problems,
            },
          );
        }
        body = parsed.data;
      } else if (raw !== undefined) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `${route.method} ${route.path} takes no body`,
        );
      }
      object = route.auditObject?.({ ...base, body }) ?? object;
      const result = await route.handler({ ...base, body });
      await this.auditIf(route, principal, object, 'ok', requestId);
      if (result.contentType) {
        res.writeHead(result.status ?? 200, { 'content-type': result.contentType });
        res.end(String(result.body));
      } else sendJson(res, result.status ?? 200, result.body);
    } catch (e) {
      const err = isSecondsiteError(e)
        ? e
        : new SecondsiteError('SECONDSITE_ERR_INTERNAL', 'internal error; see the vault log');
      if (!isSecondsiteError(e)) this.deps.onError(e, url.pathname);
      // a caller who could not even authenticate leaves no row: anyone could fill the (append-only) log
      if (err.code !== 'SECONDSITE_ERR_UNAUTHORIZED')
        await this.auditIf(route, principal, object, err.code, requestId).catch((ae: unknown) =>
          this.deps.onError(ae, 'audit'),
        );
      sendError(res, err, requestId);
    }
  }

  private async auditIf(
    route: VaultRoute,
    principal: Principal | null,
    object: string | null,
    outcome: string,
    requestId: string,
  ): Promise<void> {
    if (route.method === 'GET' || route.audit === false) return;
    await this.deps.audit({
      principal: principal ? principalName(principal) : 'anonymous',
      action: route.action === 'public' ? route.operationId : route.action,
      object,
      outcome,
      requestId,
    });
  }
}

async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let total = 0;
  // read to the end even past the cap (bounded by the request timeout), so the client gets the answer
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total <= maxBytes) chunks.push(chunk);
  }
  if (total > maxBytes) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_PAYLOAD_TOO_LARGE',
      `the request body is ${total} bytes; the vault takes at most ${maxBytes}`,
    );
  }
  if (total === 0) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'the request body is not valid JSON');
  }
  if (hasNul(value)) {
    // PostgreSQL text cannot hold U+0000: refuse it here, for every field, with a clear message
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      'a string in the request body contains a NUL character (U+0000)',
    );
  }
  return value;
}

function hasNul(v: unknown): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (Array.isArray(v)) return v.some(hasNul);
  if (v !== null && typeof v === 'object')
    return Object.entries(v).some(([k, x]) => k.includes('\u0000') || hasNul(x));
  return false;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, e: SecondsiteError, requestId: string): void {
  sendJson(res, e.httpStatus, { error: { ...e.toJSON(), ...(requestId ? { requestId } : {}) } });
}

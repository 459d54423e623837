/**
 * A local control API: JSON over HTTP on a Unix socket (mode 0600), served by the host agent (for
 * `secondsite host ...`) and the management server (for `secondsite manager ...`). Routes are a table of
 * method + path pattern -> handler. Errors become `{ error: { code, message, retry, details } }` with
 * the registry's HTTP status; bodies are capped at 1 MiB; unknown routes get 404, known paths with
 * another method 405.
 */
import { chmod, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { SecondsiteError, isSecondsiteError } from '../domain/errors.js';
import type { Logger } from '../observability/logger.js';
import { compileRoutePath, routeParams, type RoutePattern } from '../protocol/http/route-path.js';

export const MAX_BODY_BYTES = 1024 * 1024;

export interface RouteRequest {
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  /** Peer API only: the calling host, authenticated by its mutual-TLS certificate. */
  callerHostId?: string;
}

export interface RouteResult {
  status?: number;
  body: unknown;
  /** Plain text (e.g. Prometheus) instead of JSON. */
  contentType?: string;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path with `:name` segments, e.g. `/v1/disks/:diskId`. */
  path: string;
  handler: (req: RouteRequest) => Promise<RouteResult>;
}

interface CompiledRoute extends Route {
  pattern: RoutePattern;
}

function compile(route: Route): CompiledRoute {
  return { ...route, pattern: compileRoutePath(route.path) };
}

/**
 * Dispatches HTTP requests to a route table (the control API on its Unix socket, the peer API on the
 * replication port). `callerOf` names the authenticated caller, when the transport has one.
 */
export class RouteDispatcher {
  private readonly routes: CompiledRoute[];

  constructor(
    routes: Route[],
    private readonly log: Logger,
    private readonly callerOf: (req: IncomingMessage) => string | undefined = () => undefined,
  ) {
    this.routes = routes.map(compile);
  }

  /** A `node:http` request listener. */
  listener(): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        this.log.error('control request failed', { error: e });
        if (!res.headersSent)
          send(res, 500, { error: { code: 'SECONDSITE_ERR_INTERNAL', message: String(e) } });
      });
    };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://agent');
    const matching = this.routes
      .map((r) => ({ r, m: r.pattern.regex.exec(url.pathname) }))
      .filter((x): x is { r: CompiledRoute; m: RegExpExecArray } => x.m !== null);
    if (matching.length === 0) {
      send(res, 404, errorBody('SECONDSITE_ERR_NOT_FOUND', `no route ${url.pathname}`));
      return;
    }
    const hit = matching.find((x) => x.r.method === req.method);
    if (!hit) {
      send(
        res,
        405,
        errorBody('SECONDSITE_ERR_INVALID_ARGUMENT', `${req.method ?? '?'} not allowed on ${url.pathname}`),
      );
      return;
    }
    try {
      const body = await readJsonBody(req);
      const params = routeParams(hit.r.pattern, hit.m);
      const callerHostId = this.callerOf(req);
      const result = await hit.r.handler({
        params,
        query: url.searchParams,
        body,
        ...(callerHostId === undefined ? {} : { callerHostId }),
      });
      if (result.contentType) {
        res.writeHead(result.status ?? 200, { 'content-type': result.contentType });
        res.end(String(result.body));
      } else send(res, result.status ?? 200, result.body);
    } catch (e) {
      if (isSecondsiteError(e)) {
        send(res, e.httpStatus, { error: e.toJSON() });
      } else {
        this.log.error('control handler crashed', { path: url.pathname, error: e });
        send(res, 500, errorBody('SECONDSITE_ERR_INTERNAL', e instanceof Error ? e.message : String(e)));
      }
    }
  }
}

/** A control API on a Unix socket (mode 0600: the socket's owner is the caller). */
export class ControlServer {
  private readonly dispatcher: RouteDispatcher;
  private server: Server | null = null;
  private socketPath: string | null = null;

  constructor(routes: Route[], log: Logger) {
    this.dispatcher = new RouteDispatcher(routes, log);
  }

  async listen(socketPath: string): Promise<void> {
    await unlink(socketPath).catch(() => undefined);
    const server = createServer(this.dispatcher.listener());
    this.server = server;
    this.socketPath = socketPath;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    await chmod(socketPath, 0o600);
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (this.socketPath) await unlink(this.socketPath).catch(() => undefined);
  }
}

function errorBody(code: string, message: string): unknown {
  return { error: { code, message } };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_BODY_BYTES) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `request body is larger than ${MAX_BODY_BYTES} bytes`,
      );
    }
    chunks.push(chunk);
  }
  if (total === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'request body is not valid JSON');
  }
}

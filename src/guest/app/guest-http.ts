/**
 * The guest's HTTP API, served on every NIC address and on the guest-agent Unix socket:
 *
 *   GET  /state      200 GuestStateView
 *   POST /quiesce    body {} or { autoThawMs }; 200 QuiesceAnswer once the log on disk is consistent
 *   POST /thaw       200 { state, thawed: boolean }
 *   POST /shutdown   200 { state: 'stopped', lastDurableSeq } after the final flush; then the process exits 0
 *
 * Errors: { error: { code, message } } with the registry's HTTP status.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isSecondsiteError, SecondsiteError } from '../../domain/errors.js';
import type { GuestApp } from './guest-app.js';

export interface GuestHttpHooks {
  /** Called by POST /shutdown after the answer was sent. */
  afterShutdown(): void;
}

const MAX_BODY_BYTES = 64 * 1024;

export function createGuestHttpServer(app: GuestApp, hooks: GuestHttpHooks): Server {
  return createServer((req, res) => {
    handle(app, hooks, req, res).catch((e: unknown) => sendError(res, e));
  });
}

async function handle(
  app: GuestApp,
  hooks: GuestHttpHooks,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const route = `${req.method ?? 'GET'} ${path}`;
  switch (route) {
    case 'GET /state':
      return send(res, 200, app.view());
    case 'POST /quiesce': {
      const body = await readBody(req);
      const autoThawMs = body.autoThawMs;
      if (
        autoThawMs !== undefined &&
        (typeof autoThawMs !== 'number' || !Number.isInteger(autoThawMs) || autoThawMs < 1)
      )
        throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'autoThawMs must be a positive integer');
      return send(res, 200, await app.quiesce(autoThawMs));
    }
    case 'POST /thaw': {
      await readBody(req);
      const thawed = app.thaw('host');
      return send(res, 200, { state: app.view().state, thawed });
    }
    case 'POST /shutdown': {
      await readBody(req);
      await app.shutdown();
      res.once('finish', () => hooks.afterShutdown());
      return send(res, 200, { state: 'stopped', lastDurableSeq: app.view().lastDurableSeq });
    }
    default:
      throw new SecondsiteError('SECONDSITE_ERR_NOT_FOUND', `no route ${route}; see GET /state`);
  }
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    bytes += c.length;
    if (bytes > MAX_BODY_BYTES)
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'request body too large');
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'the request body is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'the request body must be a JSON object');
  return v as Record<string, unknown>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, e: unknown): void {
  const err = isSecondsiteError(e)
    ? e
    : new SecondsiteError('SECONDSITE_ERR_INTERNAL', e instanceof Error ? e.message : String(e));
  if (res.headersSent) {
    res.destroy();
    return;
  }
  send(res, err.httpStatus, { error: { code: err.code, message: err.message } });
}

/** Listens on host:port (port 0 = any) and returns the bound address. */
export function listenTcp(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

export function listenUnix(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Client for the host agent's control API over its Unix socket, and for another host's peer API over
 * mutual TLS (`over`). Turns error bodies back into SecondsiteError so the CLI reports the agent's
 * code and message unchanged.
 */
import { request, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest, type RequestOptions as HttpsRequestOptions } from 'node:https';
import { SecondsiteError } from '../domain/errors.js';
import { errorFromBody } from '../protocol/http/error-body.js';

/** Another host's peer API: its replication address and port, with the TLS options to reach it. */
export interface PeerEndpoint {
  readonly host: string;
  readonly port: number;
  readonly tls: HttpsRequestOptions;
  /** Names the peer in errors. */
  readonly hostId: string;
}

export class ControlClient {
  constructor(
    private readonly socketPath: string,
    private readonly over?: PeerEndpoint,
  ) {}

  /** A client for another host's peer API (docs/design/failover.md section 8). */
  static peer(endpoint: PeerEndpoint): ControlClient {
    return new ControlClient('', endpoint);
  }

  private send(options: RequestOptions, onResponse: (res: IncomingMessage) => void): ClientRequest {
    if (!this.over) return request({ ...options, socketPath: this.socketPath }, onResponse);
    const { host, port, tls } = this.over;
    return httpsRequest({ ...tls, ...options, host, port, agent: false }, onResponse);
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }
  post<T>(path: string, body?: unknown): Promise<T> {
    return this.call<T>('POST', path, body);
  }
  delete<T>(path: string): Promise<T> {
    return this.call<T>('DELETE', path);
  }

  /** Raw text (e.g. /metrics). */
  text(path: string): Promise<string> {
    return this.raw('GET', path).then((r) => r.text);
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { status, text } = await this.raw(method, path, body);
    const parsed = text ? (JSON.parse(text) as unknown) : undefined;
    if (status >= 400) throw errorFromBody(status, parsed, 'agent');
    return parsed as T;
  }

  private raw(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = this.send(
        {
          path,
          method,
          headers: payload
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
            : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (this.over && (e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET' || e.code === 'ETIMEDOUT')) {
          reject(
            new SecondsiteError(
              'SECONDSITE_ERR_CONNECTION_LOST',
              `host ${this.over.hostId} does not answer at ${this.over.host}:${this.over.port} (${e.code}); check that its agent runs and the address`,
              { hostId: this.over.hostId, code: e.code },
            ),
          );
        } else if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
          reject(
            new SecondsiteError(
              'SECONDSITE_ERR_CONNECTION_LOST',
              `the host agent is not running (no answer on ${this.socketPath}). Start it with 'secondsite host serve'.`,
              { socketPath: this.socketPath },
            ),
          );
        } else reject(e);
      });
      if (payload) req.write(payload);
      req.end();
    });
  }
}

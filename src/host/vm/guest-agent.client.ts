/**
 * The host's side of the guest-agent channel: the guest's HTTP API over its Unix socket (the
 * process driver's stand-in for a virtio-serial guest agent; it reaches guests in any network
 * namespace). Every call has a deadline; no answer in time is SECONDSITE_ERR_TIMEOUT, no socket or a
 * refused connection is SECONDSITE_ERR_CONNECTION_LOST, an error answer is rethrown with its code.
 */
import { request } from 'node:http';
import { ERROR_REGISTRY, SecondsiteError, type ErrorCode } from '../../domain/errors.js';
import type { GuestAppView } from './vm-driver.js';

export interface GuestStateAnswer extends GuestAppView {
  readonly guestId: string;
  readonly listen: readonly { host: string; port: number }[];
  readonly autoThawAtWallMs: number | null;
}

export interface GuestQuiesceAnswer {
  readonly state: 'quiesced';
  readonly lastWrittenSeq: number;
  readonly lastDurableSeq: number;
  readonly autoThawAtWallMs: number;
  readonly alreadyQuiesced: boolean;
}

export class GuestAgentClient {
  constructor(
    readonly socketPath: string,
    private readonly what: string,
  ) {}

  state(timeoutMs: number): Promise<GuestStateAnswer> {
    return this.call('GET', '/state', undefined, timeoutMs) as Promise<GuestStateAnswer>;
  }

  quiesce(timeoutMs: number, autoThawMs?: number): Promise<GuestQuiesceAnswer> {
    return this.call(
      'POST',
      '/quiesce',
      autoThawMs === undefined ? {} : { autoThawMs },
      timeoutMs,
    ) as Promise<GuestQuiesceAnswer>;
  }

  thaw(timeoutMs: number): Promise<{ state: string; thawed: boolean }> {
    return this.call('POST', '/thaw', {}, timeoutMs) as Promise<{ state: string; thawed: boolean }>;
  }

  shutdown(timeoutMs: number): Promise<{ state: string; lastDurableSeq: number }> {
    return this.call('POST', '/shutdown', {}, timeoutMs) as Promise<{
      state: string;
      lastDurableSeq: number;
    }>;
  }

  private call(method: 'GET' | 'POST', path: string, body: unknown, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const text = body === undefined ? '' : JSON.stringify(body);
      let settled = false;
      const done = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn();
      };
      const req = request(
        { socketPath: this.socketPath, method, path, headers: { 'content-type': 'application/json' } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => done(() => reject(this.lost(e))));
          res.on('end', () =>
            done(() => {
              let parsed: unknown;
              try {
                parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
              } catch {
                return reject(
                  new SecondsiteError(
                    'SECONDSITE_ERR_PROTOCOL',
                    `${this.what} answered ${path} with non-JSON`,
                  ),
                );
              }
              if ((res.statusCode ?? 500) >= 400) {
                const err = (parsed as { error?: { code?: string; message?: string } }).error;
                const code =
                  err?.code && err.code in ERROR_REGISTRY
                    ? (err.code as ErrorCode)
                    : 'SECONDSITE_ERR_INTERNAL';
                return reject(
                  new SecondsiteError(code, `${this.what}: ${err?.message ?? `HTTP ${res.statusCode}`}`),
                );
              }
              resolve(parsed);
            }),
          );
        },
      );
      const timer = setTimeout(() => {
        done(() =>
          reject(
            new SecondsiteError(
              'SECONDSITE_ERR_TIMEOUT',
              `${this.what} did not answer ${method} ${path} within ${timeoutMs} ms`,
              { timeoutMs },
            ),
          ),
        );
        req.destroy();
      }, timeoutMs);
      req.on('error', (e) => done(() => reject(this.lost(e))));
      req.end(text);
    });
  }

  private lost(e: Error): SecondsiteError {
    return new SecondsiteError(
      'SECONDSITE_ERR_CONNECTION_LOST',
      `cannot reach ${this.what} on its agent socket ${this.socketPath}: ${e.message}`,
      {},
      { cause: e },
    );
  }
}

/**
 * A client of the vault's REST API over HTTPS, trusting the vault through its CA certificate (from
 * the registration key file or `vault.json`), authenticated by an API token (people, the CLI) or by the
 * provider's client certificate. Error bodies become SecondsiteError with the vault's code and message.
 */
import { request } from 'node:https';
import { SecondsiteError } from '../../domain/errors.js';
import { errorFromBody } from '../../protocol/http/error-body.js';

export interface VaultClientOptions {
  readonly url: string;
  readonly caCertPem: string;
  readonly token?: string;
  readonly clientCert?: { readonly keyPem: string; readonly certPem: string };
  /** Per request (default 30 s). */
  readonly timeoutMs?: number;
}

export class VaultClient {
  private readonly base: URL;
  private clientCert: { readonly keyPem: string; readonly certPem: string } | undefined;

  constructor(private readonly options: VaultClientOptions) {
    this.clientCert = options.clientCert;
    try {
      this.base = new URL(options.url);
    } catch {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `'${options.url}' is not a vault URL (https://host:port)`,
      );
    }
    if (this.base.protocol !== 'https:') {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `the vault URL must be https://, not '${options.url}'`,
      );
    }
  }

  /** The client certificate later requests present (a renewed one); requests under way keep theirs. */
  useClientCert(cert: { readonly keyPem: string; readonly certPem: string }): void {
    this.clientCert = cert;
  }

  /** `signal` ends the request (a long-poll) early: it then rejects. */
  get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.call<T>('GET', path, undefined, signal);
  }
  post<T>(path: string, body?: unknown): Promise<T> {
    return this.call<T>('POST', path, body ?? {});
  }
  delete<T>(path: string): Promise<T> {
    return this.call<T>('DELETE', path);
  }

  async call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const { status, text } = await this.raw(method, path, body, signal);
    let parsed: unknown;
    try {
      parsed = text ? (JSON.parse(text) as unknown) : undefined;
    } catch {
      if (status < 400) return text as T;
    }
    if (status >= 400) throw errorFromBody(status, parsed, 'the vault');
    return parsed as T;
  }

  /** Raw status and body text (e.g. /metrics, or to look at an error's shape). */
  raw(
    method: string,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
  ): Promise<{ status: number; text: string }> {
    return this.rawText(method, path, body === undefined ? undefined : JSON.stringify(body), signal);
  }

  /** Like `raw`, with the body as given (tests send malformed JSON with it). */
  rawText(
    method: string,
    path: string,
    payload?: string,
    signal?: AbortSignal,
  ): Promise<{ status: number; text: string }> {
    const headers: Record<string, string | number> = {};
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(payload);
    }
    if (this.options.token) headers['authorization'] = `Bearer ${this.options.token}`;
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: this.base.hostname,
          port: this.base.port || 443,
          path,
          method,
          headers,
          ca: this.options.caCertPem,
          ...(this.clientCert ? { key: this.clientCert.keyPem, cert: this.clientCert.certPem } : {}),
          agent: false,
          timeout: this.options.timeoutMs ?? 30_000,
          ...(signal ? { signal } : {}),
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
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e: NodeJS.ErrnoException) => {
        const code = e.code ?? '';
        if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
          return reject(
            new SecondsiteError(
              'SECONDSITE_ERR_UNAUTHORIZED',
              `the vault at ${this.options.url} presented a certificate its CA file does not vouch for (${code}); check the URL and the CA (vault.json / the key file)`,
              { url: this.options.url, code },
            ),
          );
        }
        reject(
          new SecondsiteError(
            'SECONDSITE_ERR_CONNECTION_LOST',
            `the vault at ${this.options.url} does not answer (${e.code ?? e.message}); check the URL and that 'secondsite vault serve' runs`,
            { url: this.options.url, code: e.code ?? null },
          ),
        );
      });
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }
}

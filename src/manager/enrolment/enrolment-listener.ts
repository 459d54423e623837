/**
 * The management server's enrolment listener (`manager serve --enrol-listen HOST:PORT`, default
 * 127.0.0.1:8444, beside the vault's 8443): HTTPS with a server certificate from the site CA (CN `enrol.manager.site`; hosts
 * trust it through the site CA in their key file), no client certificate (the key is the credential).
 * One route: `POST /enrol/v1/hosts`. Port 0 binds any free port; `url` is what key files carry.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { SecondsiteError } from '../../domain/errors.js';
import type { Logger } from '../../observability/logger.js';
import { RouteDispatcher } from '../../control-api/control-server.js';
import { ENROLMENT_PATH, enrolmentRequestSchema } from '../../protocol/host-api/enrolment.schema.js';
import { parseBody } from '../../protocol/host-api/schema.js';
import type { EnrolmentService } from './enrolment.service.js';
import type { KeyAndCert } from './site-ca.js';

export const DEFAULT_ENROL_LISTEN = { host: '127.0.0.1', port: 8444 } as const;

/** `HOST:PORT` (IPv6 in brackets) -> its parts; INVALID_ARGUMENT naming the option otherwise. */
export function parseListenAddress(text: string, option: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `${option} must be HOST:PORT (e.g. 0.0.0.0:8444; port 0 = any free port), not '${text}'`,
    );
  }
  return { host: m[1] ?? m[2] ?? '', port };
}

export class EnrolmentListener {
  private server: Server | null = null;
  private boundUrl = '';

  constructor(
    private readonly enrolment: EnrolmentService,
    private readonly log: Logger,
  ) {}

  /** `https://host:port` as bound (an IPv6 host in brackets). */
  get url(): string {
    return this.boundUrl;
  }

  async listen(
    address: { host: string; port: number },
    tls: KeyAndCert & { caCertPem: string },
  ): Promise<void> {
    const dispatcher = new RouteDispatcher(
      [
        {
          method: 'POST',
          path: ENROLMENT_PATH,
          handler: async ({ body }) => {
            const req = parseBody(enrolmentRequestSchema, body, 'enrolment request');
            try {
              const result = await this.enrolment.enrol(req);
              this.log.info('host enrolled', { hostId: req.hostId, address: req.replicationAddress });
              return { status: 201, body: result };
            } catch (e) {
              this.log.warn('enrolment refused', { hostId: req.hostId, error: e });
              throw e;
            }
          },
        },
      ],
      this.log,
    );
    const server = createServer(
      { key: tls.keyPem, cert: tls.certPem, ca: tls.caCertPem, minVersion: 'TLSv1.2' },
      dispatcher.listener(),
    );
    server.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException): void => {
        const where = `${address.host}:${address.port}`;
        reject(
          e.code === 'EADDRINUSE' || e.code === 'EADDRNOTAVAIL' || e.code === 'EACCES'
            ? new SecondsiteError(
                'SECONDSITE_ERR_INVALID_ARGUMENT',
                `the enrolment listener cannot listen on ${where} (${e.code}); choose another address with --enrol-listen HOST:PORT (port 0 = any free port)`,
                { address: where },
              )
            : e,
        );
      };
      server.once('error', onError);
      server.listen(address.port, address.host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    this.server = server;
    const bound = server.address() as AddressInfo;
    const host = address.host.includes(':') ? `[${address.host}]` : address.host;
    this.boundUrl = `https://${host}:${bound.port}`;
  }

  /** A renewed server certificate, for the handshakes from now on. */
  updateTls(tls: KeyAndCert & { caCertPem: string }): void {
    this.server?.setSecureContext({
      key: tls.keyPem,
      cert: tls.certPem,
      ca: tls.caCertPem,
      minVersion: 'TLSv1.2',
    });
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

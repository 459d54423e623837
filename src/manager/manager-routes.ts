/**
 * The management server's control API (`<data dir>/manager.sock`, mode 0600), used by the
 * `secondsite manager ...` commands. Each area of the management server contributes its routes here.
 */
import type { Route } from '../control-api/control-server.js';
import type { Database } from '../persistence/database.js';
import type { ProviderIdentity } from './provider/provider-registration.js';
import type { ProviderCertificate } from './provider/provider-certificate.js';
import type { ProviderSession } from './provider/provider-session.js';

export interface ManagerRouteDeps {
  readonly db: Database;
  readonly identity: ProviderIdentity;
  readonly session: ProviderSession;
  readonly providerCertificate: ProviderCertificate;
  /** The renewal of the manager's own site-CA certificates. */
  readonly ownCertificates: Readonly<{ lastRenewedAt: string | null; lastError: string | null }>;
  readonly dataDir: string;
}

export function managerRoutes(deps: ManagerRouteDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/status',
      handler: () => {
        const r = deps.identity.registration;
        return Promise.resolve({
          body: {
            managementServerId: r.managementServerId,
            name: r.managementServerName,
            node: r.nodeName,
            vault: r.vaultUrl,
            heartbeatsSent: deps.session.heartbeatsSent,
            lastHeartbeatError: deps.session.lastError,
            certificate: deps.providerCertificate.show(),
            ownCertificates: deps.ownCertificates,
          },
        });
      },
    },
    {
      method: 'GET',
      path: '/v1/certificate',
      handler: () => Promise.resolve({ body: deps.providerCertificate.show() }),
    },
    {
      method: 'POST',
      path: '/v1/certificate/renew',
      handler: async () => ({ body: await deps.providerCertificate.renewNow() }),
    },
  ];
}

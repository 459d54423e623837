/**
 * Who is calling (docs/design/vault.md section 2): a provider by its client certificate (issued by
 * this vault's CA, and still the node's newest), or a user by a bearer token. A request that presents
 * a certificate is judged by it alone, never downgraded to a token check.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { SecondsiteError } from '../../domain/errors.js';
import type { Principal } from '../../domain/vault/rbac.js';
import type { Queryable } from '../../persistence/database.js';
import { parseProviderCommonName } from '../registration/registration.service.js';
import type { UsersService } from '../users/users.service.js';

const unauthorized = (message: string): SecondsiteError =>
  new SecondsiteError('SECONDSITE_ERR_UNAUTHORIZED', message);

export function authenticator(
  db: Queryable,
  users: UsersService,
): (req: IncomingMessage, socket: TLSSocket) => Promise<Principal | null> {
  return async (req, socket) => {
    const cert = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : null;
    if (cert && Object.keys(cert).length > 0) {
      if (!socket.authorized) {
        throw unauthorized(
          `the client certificate was not issued by this vault (${String(socket.authorizationError)}); register the management server with a key of this vault`,
        );
      }
      const subject = cert.subject as unknown as Record<string, string | string[] | undefined>;
      const cn = typeof subject.CN === 'string' ? subject.CN : '';
      const who = parseProviderCommonName(cn);
      if (!who)
        throw unauthorized(`the client certificate '${cn}' is not a provider certificate of this vault`);
      const r = await db.query<{ cert_serial: string }>(
        'SELECT cert_serial FROM provider_nodes WHERE management_server_id = $1 AND node_name = $2',
        [who.managementServerId, who.nodeName],
      );
      const serial = r.rows[0]?.cert_serial;
      if (serial === undefined)
        throw unauthorized(`provider node ${who.nodeName} of ${who.managementServerId} is not registered`);
      if (serial !== cert.serialNumber.toUpperCase()) {
        throw unauthorized(
          `this provider certificate was replaced by a newer registration of ${who.managementServerId} node ${who.nodeName}; use the newest, or register again with a new key`,
        );
      }
      return { kind: 'provider', managementServerId: who.managementServerId, nodeName: who.nodeName };
    }
    const header = req.headers.authorization;
    if (header === undefined) return null;
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw unauthorized("the Authorization header must be 'Bearer <API token>'");
    return users.authenticate(m[1] as string);
  };
}

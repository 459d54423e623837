/**
 * Who is calling (docs/design/vault.md section 2): a provider by its client certificate (issued by
 * this vault's CA, and still the node's newest), or a user by a bearer token. A request that presents
 * a certificate is judged by it alone, never downgraded to a token check. A provider node has one
 * current serial, and after a renewal a next one, which the first request presenting it makes current
 * (docs/design/certificate-renewal.md section 4).
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { SecondsiteError } from '../../domain/errors.js';
import type { Principal } from '../../domain/vault/rbac.js';
import type { Queryable } from '../../persistence/database.js';
import { parseProviderCommonName } from '../../protocol/vault-api/provider-name.js';
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
        const reason = String(socket.authorizationError);
        throw unauthorized(
          reason === 'CERT_HAS_EXPIRED'
            ? `the client certificate ended on ${cert.valid_to}; register the management server again with a new key of this vault ('secondsite manager register')`
            : `the client certificate was not issued by this vault (${reason}); register the management server with a key of this vault`,
        );
      }
      const subject = cert.subject as unknown as Record<string, string | string[] | undefined>;
      const cn = typeof subject.CN === 'string' ? subject.CN : '';
      const who = parseProviderCommonName(cn);
      if (!who)
        throw unauthorized(`the client certificate '${cn}' is not a provider certificate of this vault`);
      const certSerial = cert.serialNumber.toUpperCase();
      if (!(await acceptSerial(db, who.managementServerId, who.nodeName, certSerial))) {
        throw unauthorized(
          `this provider certificate was replaced by a newer registration or renewal of ${who.managementServerId} node ${who.nodeName}; use the newest, or register again with a new key`,
        );
      }
      return {
        kind: 'provider',
        managementServerId: who.managementServerId,
        nodeName: who.nodeName,
        certSerial,
      };
    }
    const header = req.headers.authorization;
    if (header === undefined) return null;
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw unauthorized("the Authorization header must be 'Bearer <API token>'");
    return users.authenticate(m[1] as string);
  };
}

/**
 * True when `serial` is the node's current serial, or its next one (then made current: from this
 * request on the older certificate is refused). A node that is not registered is UNAUTHORIZED.
 */
async function acceptSerial(
  db: Queryable,
  managementServerId: string,
  nodeName: string,
  serial: string,
): Promise<boolean> {
  const r = await db.query<{ cert_serial: string; next_cert_serial: string | null }>(
    'SELECT cert_serial, next_cert_serial FROM provider_nodes WHERE management_server_id = $1 AND node_name = $2',
    [managementServerId, nodeName],
  );
  const row = r.rows[0];
  if (row === undefined)
    throw unauthorized(`provider node ${nodeName} of ${managementServerId} is not registered`);
  if (row.cert_serial === serial) return true;
  if (row.next_cert_serial !== serial) return false;
  const promoted = await db.query(
    `UPDATE provider_nodes
        SET cert_serial = next_cert_serial, cert_not_after = next_cert_not_after, cert_renewed_at = now(),
            next_cert_serial = NULL, next_cert_not_after = NULL
      WHERE management_server_id = $1 AND node_name = $2 AND next_cert_serial = $3`,
    [managementServerId, nodeName, serial],
  );
  if (promoted.rowCount === 1) return true;
  // another request (another vault process) changed the row meanwhile: accept only what is current now
  const again = await db.query<{ cert_serial: string }>(
    'SELECT cert_serial FROM provider_nodes WHERE management_server_id = $1 AND node_name = $2',
    [managementServerId, nodeName],
  );
  return again.rows[0]?.cert_serial === serial;
}

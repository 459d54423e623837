/**
 * Registration keys and provider registration (docs/design/vault.md section 4).
 *
 * A key is single-use, only the newest is valid, and it expires (at most 5 days). Registration checks
 * the key, spends it, creates or finds the management server and its node, and signs the provider's
 * CSR, all in one transaction: either the key is spent and the certificate recorded, or nothing
 * changed. The certificate's serial is the node's: registering a node again replaces it, and the old
 * certificate stops working at once.
 *
 * A registered node renews its certificate itself (`renew`, docs/design/certificate-renewal.md
 * section 4): the new serial is the node's next one, accepted beside the current one until the first
 * request that presents it (`acceptSerial`).
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Database, Queryable } from '../../persistence/database.js';
import { signCsr } from '../../pki/csr.js';
import type {
  CertificateRenewalResult,
  RegistrationKeyFile,
  RegistrationRequest,
  RegistrationResult,
} from '../../protocol/vault-api/vault-api.schema.js';
import { providerCommonName } from '../../protocol/vault-api/provider-name.js';
import { newId, newSecret, secretMatches, sha256 } from '../auth/secret-token.js';
import type { VaultIdentity } from '../identity/vault-identity.js';

export const PROVIDER_CERT_DAYS = 365;
const HOUR_MS = 3600 * 1000;

export class RegistrationService {
  constructor(
    private readonly db: Database,
    private readonly identity: VaultIdentity,
    private readonly vaultUrl: () => string,
  ) {}

  /** A new key; every older unused key is superseded (only the newest is valid). */
  async createKey(createdBy: string, expiresInHours: number): Promise<RegistrationKeyFile> {
    const keyId = newId('key');
    const secret = newSecret();
    const expiresAt = new Date(Date.now() + expiresInHours * HOUR_MS);
    await this.db.transaction(async (tx) => {
      await tx.query(
        'UPDATE registration_keys SET superseded_at = now() WHERE used_at IS NULL AND superseded_at IS NULL',
      );
      await tx.query(
        'INSERT INTO registration_keys (key_id, secret_sha256, created_by, expires_at) VALUES ($1, $2, $3, $4)',
        [keyId, sha256(secret), createdBy, expiresAt],
      );
    });
    return {
      format: 'secondsite-registration-key-1',
      vaultId: this.identity.vaultId,
      vaultName: this.identity.name,
      vaultUrl: this.vaultUrl(),
      vaultCaCertPem: this.identity.caCertPem,
      keyId,
      secret,
      expiresAt: expiresAt.toISOString(),
    };
  }

  async register(req: RegistrationRequest, heartbeatIntervalSeconds: number): Promise<RegistrationResult> {
    if (req.vaultId !== this.identity.vaultId) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_KEY_FOREIGN',
        // no ids in the answer: anyone may ask, and this vault's id is nobody's business
        'this registration key belongs to another vault, not to this one; create a key in the vault you register with (or pass its URL with --vault)',
        { keyVault: req.vaultId },
      );
    }
    return this.db.transaction(async (tx) => {
      await this.spendKey(tx, req);
      const ms = await tx.query<{
        management_server_id: string;
        name: string;
        heartbeat_interval_seconds: number;
      }>(
        `INSERT INTO management_servers (management_server_id, name, heartbeat_interval_seconds, last_heartbeat_at)
         VALUES ($1, $2, $3, now())
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
         RETURNING management_server_id, name, heartbeat_interval_seconds`,
        [newId('ms'), req.managementServerName, heartbeatIntervalSeconds],
      );
      const row = ms.rows[0];
      if (!row) throw new Error('management server upsert returned nothing');
      const signed = await signCsr({
        caDir: this.identity.caDir,
        csrPem: req.csrPem,
        commonName: providerCommonName(row.management_server_id, req.nodeName),
        usage: 'clientAuth',
        days: PROVIDER_CERT_DAYS,
      });
      await tx.query(
        `INSERT INTO provider_nodes (management_server_id, node_name, cert_serial, cert_not_after)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (management_server_id, node_name) DO UPDATE
           SET cert_serial = EXCLUDED.cert_serial, cert_not_after = EXCLUDED.cert_not_after, registered_at = now(),
               next_cert_serial = NULL, next_cert_not_after = NULL, cert_renewed_at = NULL`,
        [row.management_server_id, req.nodeName, signed.serialHex, new Date(signed.notAfterMs)],
      );
      await tx.query('UPDATE registration_keys SET used_for = $2 WHERE key_id = $1', [
        req.keyId,
        `${row.management_server_id}/${req.nodeName}`,
      ]);
      return {
        managementServerId: row.management_server_id,
        managementServerName: row.name,
        nodeName: req.nodeName,
        certPem: signed.certPem,
        vaultCaCertPem: this.identity.caCertPem,
        heartbeatIntervalSeconds: row.heartbeat_interval_seconds,
      };
    });
  }

  /**
   * Signs a new certificate for a registered node (the caller, authenticated by its current
   * certificate) and keeps its serial as the node's next one, replacing a next one never presented.
   */
  async renew(
    managementServerId: string,
    nodeName: string,
    presentedSerial: string,
    csrPem: string,
  ): Promise<CertificateRenewalResult> {
    const signed = await signCsr({
      caDir: this.identity.caDir,
      csrPem,
      commonName: providerCommonName(managementServerId, nodeName),
      usage: 'clientAuth',
      days: PROVIDER_CERT_DAYS,
    });
    // only while the certificate that asked is still current: a registration meanwhile (which
    // revokes it) must not be followed by a certificate this request obtained
    const r = await this.db.query(
      `UPDATE provider_nodes SET next_cert_serial = $4, next_cert_not_after = $5
       WHERE management_server_id = $1 AND node_name = $2 AND cert_serial = $3`,
      [managementServerId, nodeName, presentedSerial, signed.serialHex, new Date(signed.notAfterMs)],
    );
    if (r.rowCount !== 1) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_UNAUTHORIZED',
        `the certificate of provider node ${nodeName} of ${managementServerId} that asked for this renewal was replaced while it was signed (a new registration or renewal); use the newest, or register again with a new key`,
      );
    }
    return {
      managementServerId,
      nodeName,
      certPem: signed.certPem,
      serial: signed.serialHex,
      notAfter: new Date(signed.notAfterMs).toISOString(),
      vaultCaCertPem: this.identity.caCertPem,
    };
  }

  /** Checks the key and marks it used (row-locked: two registrations with one key: one wins). */
  private async spendKey(tx: Queryable, req: RegistrationRequest): Promise<void> {
    const r = await tx.query<{
      secret_sha256: Buffer;
      expires_at: Date;
      used_at: Date | null;
      superseded_at: Date | null;
    }>(
      'SELECT secret_sha256, expires_at, used_at, superseded_at FROM registration_keys WHERE key_id = $1 FOR UPDATE',
      [req.keyId],
    );
    const key = r.rows[0];
    const fix = "create a new key with 'secondsite vault key create' and register again";
    if (!key || !secretMatches(req.secret, key.secret_sha256)) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_KEY_INVALID',
        `the registration key is not valid for this vault (damaged or altered); ${fix}`,
      );
    }
    if (key.used_at) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_KEY_USED',
        `the registration key was already used at ${key.used_at.toISOString()} (keys are single-use); ${fix}`,
      );
    }
    if (key.superseded_at) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_KEY_SUPERSEDED',
        `a newer registration key was created at ${key.superseded_at.toISOString()}; only the newest key is valid: use it, or ${fix}`,
      );
    }
    if (key.expires_at.getTime() <= Date.now()) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_KEY_EXPIRED',
        `the registration key expired at ${key.expires_at.toISOString()}; ${fix}`,
      );
    }
    await tx.query('UPDATE registration_keys SET used_at = now() WHERE key_id = $1', [req.keyId]);
  }
}

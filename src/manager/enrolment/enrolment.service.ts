/**
 * Host enrolment keys and host enrolment on the management server (docs/design/vault.md section 6),
 * the model of the vault's registration keys (section 4).
 *
 * A key is single-use, only the newest unused key is valid (making one supersedes the others), and it
 * expires (default 24 h, at most 120 h). Enrolment checks the key, spends it, signs the host's CSR with
 * the site CA (CN and DNS SAN = host id, serverAuth + clientAuth: a host is both ends of replication)
 * and inserts or updates the host's row, in one transaction: either the key is spent and the host
 * recorded with its certificate, or nothing changed. Enrolling a host id again (with a new key)
 * replaces its certificate and address; its group, state and inventory stay.
 */
import { createHash, randomBytes, timingSafeEqual, X509Certificate } from 'node:crypto';
import { SecondsiteError } from '../../domain/errors.js';
import type { Database, Queryable } from '../../persistence/database.js';
import { signCsr } from '../../pki/csr.js';
import {
  ENROLMENT_KEY_DEFAULT_HOURS,
  ENROLMENT_KEY_MAX_HOURS,
  MANAGER_CALLER_CN,
  type EnrolmentKeyFile,
  type EnrolmentRequest,
  type EnrolmentResult,
} from '../../protocol/host-api/enrolment.schema.js';
import type { SiteCa } from './site-ca.js';

export const HOST_CERT_DAYS = 825;

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

function secretMatches(secret: string, stored: Buffer): boolean {
  const got = sha256(secret);
  return got.length === stored.length && timingSafeEqual(got, stored);
}

export class EnrolmentService {
  constructor(
    private readonly db: Database,
    private readonly siteCa: () => Promise<SiteCa>,
    private readonly managementServerName: string,
    /** The enrolment listener's URL (https://host:port), as hosts reach it. */
    private readonly managerUrl: () => string,
  ) {}

  /** A new key (every older unused key is superseded), as the key file a host enrols with. */
  async createKey(expiresInHours = ENROLMENT_KEY_DEFAULT_HOURS): Promise<EnrolmentKeyFile> {
    if (!Number.isInteger(expiresInHours) || expiresInHours < 1 || expiresInHours > ENROLMENT_KEY_MAX_HOURS) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `an enrolment key lives 1 to ${ENROLMENT_KEY_MAX_HOURS} hours, not ${expiresInHours}`,
      );
    }
    const ca = await this.siteCa();
    const keyId = `enk_${randomBytes(12).toString('hex')}`;
    const secret = randomBytes(32).toString('base64url');
    const expiresAt = await this.db.transaction(async (tx) => {
      await tx.query(
        'UPDATE enrolment_keys SET superseded_at = now() WHERE used_at IS NULL AND superseded_at IS NULL',
      );
      const r = await tx.query<{ expires_at: Date }>(
        `INSERT INTO enrolment_keys (key_id, secret_sha256, expires_at)
         VALUES ($1, $2, now() + make_interval(hours => $3)) RETURNING expires_at`,
        [keyId, sha256(secret), expiresInHours],
      );
      return (r.rows[0] as { expires_at: Date }).expires_at;
    });
    return {
      format: 'secondsite-enrolment-key-1',
      managementServerName: this.managementServerName,
      managerUrl: this.managerUrl(),
      siteCaCertPem: ca.caCertPem,
      keyId,
      secret,
      expiresAt: expiresAt.toISOString(),
    };
  }

  async enrol(req: EnrolmentRequest): Promise<EnrolmentResult> {
    if (req.managementServerName !== undefined && req.managementServerName !== this.managementServerName) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_KEY_FOREIGN',
        `this enrolment key was made by management server '${req.managementServerName}', not by this one; make a key on the management server the host should belong to`,
        { keyManagementServer: req.managementServerName },
      );
    }
    const ca = await this.siteCa();
    return this.db.transaction(async (tx) => {
      await this.spendKey(tx, req);
      const signed = await signCsr({
        caDir: ca.caDir,
        csrPem: req.csrPem,
        commonName: req.hostId,
        usage: 'serverAuth,clientAuth',
        days: HOST_CERT_DAYS,
      });
      await tx.query(
        `INSERT INTO hosts (host_id, replication_address, replication_port, cert_serial, cert_not_after)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (host_id) DO UPDATE SET
           replication_address = EXCLUDED.replication_address,
           replication_port = EXCLUDED.replication_port,
           cert_serial = EXCLUDED.cert_serial,
           cert_not_after = EXCLUDED.cert_not_after,
           enrolled_at = now()`,
        [
          req.hostId,
          req.replicationAddress,
          req.replicationPort,
          signed.serialHex,
          new Date(signed.notAfterMs),
        ],
      );
      await tx.query('UPDATE enrolment_keys SET used_for = $2 WHERE key_id = $1', [req.keyId, req.hostId]);
      return {
        hostId: req.hostId,
        managementServerName: this.managementServerName,
        certPem: signed.certPem,
        siteCaCertPem: ca.caCertPem,
        siteCaFingerprint256: new X509Certificate(ca.caCertPem).fingerprint256,
        managerCommonName: MANAGER_CALLER_CN,
        certNotAfter: new Date(signed.notAfterMs).toISOString(),
      };
    });
  }

  /** Checks the key and marks it used (row-locked: of two enrolments with one key, one wins). */
  private async spendKey(tx: Queryable, req: EnrolmentRequest): Promise<void> {
    const r = await tx.query<{
      secret_sha256: Buffer;
      expired: boolean;
      expires_at: Date;
      used_at: Date | null;
      used_for: string | null;
      superseded_at: Date | null;
    }>(
      `SELECT secret_sha256, expires_at <= now() AS expired, expires_at, used_at, used_for, superseded_at
       FROM enrolment_keys WHERE key_id = $1 FOR UPDATE`,
      [req.keyId],
    );
    const key = r.rows[0];
    const fix = "make a new key with 'secondsite manager host enroll-key' and enrol again";
    if (!key || !secretMatches(req.secret, key.secret_sha256)) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_KEY_INVALID',
        `the enrolment key is not valid for this management server (unknown, damaged or altered); ${fix}`,
      );
    }
    if (key.used_at) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_KEY_USED',
        `the enrolment key was already used at ${key.used_at.toISOString()} (keys are single-use); ${fix}`,
      );
    }
    if (key.superseded_at) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_KEY_SUPERSEDED',
        `a newer enrolment key was made at ${key.superseded_at.toISOString()}; only the newest key is valid: use it, or ${fix}`,
      );
    }
    if (key.expired) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_KEY_EXPIRED',
        `the enrolment key expired at ${key.expires_at.toISOString()}; ${fix}`,
      );
    }
    await tx.query('UPDATE enrolment_keys SET used_at = now() WHERE key_id = $1', [req.keyId]);
  }
}

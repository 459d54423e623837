/**
 * Renewing the enrolled hosts' certificates (docs/design/certificate-renewal.md section 5): a round
 * every hour renews, one host at a time, each connected host whose certificate is due (less than a
 * third of its 825 days left, from `hosts.cert_not_after`); `renew(hostId)` renews one at once
 * (`secondsite manager host renew-certificate`). A renewal asks the host for a CSR of a new key, signs
 * it with the site CA, gives the certificate back (the host checks it, installs it and uses it), and
 * records the serial and end the host installed. A failure changes nothing here: the host keeps its
 * certificate, and the next round asks again.
 */
import { X509Certificate } from 'node:crypto';
import { SecondsiteError } from '../../domain/errors.js';
import { renewalDue } from '../../domain/pki/renewal-due.js';
import type { Logger } from '../../observability/logger.js';
import type { Database } from '../../persistence/database.js';
import { signCsr } from '../../pki/csr.js';
import {
  HOST_CERTIFICATE_INSTALL_PATH,
  HOST_CERTIFICATE_REQUEST_PATH,
  hostCertificateInstalledSchema,
  hostCertificateRequestSchema,
  type HostCertificateInstalled,
} from '../../protocol/host-api/manager-peer.schema.js';
import { HOST_CERT_DAYS } from '../enrolment/enrolment.service.js';
import type { SiteCa } from '../enrolment/site-ca.js';
import { enrolledHostClient } from '../protection/host-client.js';
import { RepeatingRound } from '../repeating-round.js';

const DAY_MS = 24 * 3600 * 1000;

export interface HostCertificateRenewal extends HostCertificateInstalled {
  readonly previousSerial: string;
}

export class HostCertificates {
  private readonly rounds: RepeatingRound;
  private readonly renewing = new Map<string, Promise<HostCertificateRenewal>>();

  constructor(
    private readonly db: Database,
    private readonly siteCa: () => Promise<SiteCa>,
    private readonly options: { checkIntervalMs: number; remainingFraction?: number },
    private readonly log: Logger,
  ) {
    this.rounds = new RepeatingRound(() => this.round(), options.checkIntervalMs);
  }

  start(): void {
    this.rounds.start();
  }

  stop(): Promise<void> {
    return this.rounds.stop();
  }

  /** Renews `hostId`'s certificate now (a renewal of it under way is joined, not repeated). */
  renew(hostId: string): Promise<HostCertificateRenewal> {
    let r = this.renewing.get(hostId);
    if (!r) {
      r = this.renewOne(hostId).finally(() => this.renewing.delete(hostId));
      this.renewing.set(hostId, r);
    }
    return r;
  }

  private async round(): Promise<void> {
    const rows = (
      await this.db
        .query<{ host_id: string; cert_not_after: Date }>(
          `SELECT host_id, cert_not_after FROM hosts WHERE connection_state = 'connected' ORDER BY host_id`,
        )
        .catch((e: unknown) => {
          this.log.warn('cannot list the hosts for certificate renewal', { error: (e as Error).message });
          return { rows: [] };
        })
    ).rows;
    for (const row of rows) {
      const notAfterMs = row.cert_not_after.getTime();
      const validity = { notBeforeMs: notAfterMs - HOST_CERT_DAYS * DAY_MS, notAfterMs };
      if (!renewalDue(validity, Date.now(), this.options.remainingFraction)) continue;
      try {
        await this.renew(row.host_id);
      } catch (e) {
        this.log.warn('host certificate renewal failed; the next round tries again', {
          hostId: row.host_id,
          error: (e as Error).message,
        });
      }
    }
  }

  private async renewOne(hostId: string): Promise<HostCertificateRenewal> {
    const ca = await this.siteCa();
    const previous = await this.db.query<{ cert_serial: string }>(
      'SELECT cert_serial FROM hosts WHERE host_id = $1',
      [hostId],
    );
    const client = await enrolledHostClient(this.db, ca, hostId);
    const request = hostCertificateRequestSchema.safeParse(
      await client.post(HOST_CERTIFICATE_REQUEST_PATH, {}),
    );
    if (!request.success) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INTERNAL',
        `host ${hostId} answered something that is not a CSR`,
      );
    }
    const signed = await signCsr({
      caDir: ca.caDir,
      csrPem: request.data.csrPem,
      commonName: hostId,
      usage: 'serverAuth,clientAuth',
      days: HOST_CERT_DAYS,
    });
    const answer = hostCertificateInstalledSchema.safeParse(
      await client.post(HOST_CERTIFICATE_INSTALL_PATH, { certPem: signed.certPem }),
    );
    if (!answer.success || answer.data.serial !== signed.serialHex || answer.data.hostId !== hostId) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INTERNAL',
        `host ${hostId} did not confirm the certificate it was given (serial ${signed.serialHex})`,
      );
    }
    await this.db.query('UPDATE hosts SET cert_serial = $2, cert_not_after = $3 WHERE host_id = $1', [
      hostId,
      signed.serialHex,
      new Date(new X509Certificate(signed.certPem).validTo),
    ]);
    this.log.info('host certificate renewed', {
      hostId,
      serial: signed.serialHex,
      notAfter: answer.data.notAfter,
    });
    return { ...answer.data, previousSerial: previous.rows[0]?.cert_serial ?? '' };
  }
}

/**
 * Renewing the provider's certificate with the vault (docs/design/certificate-renewal.md section 4):
 * a round every hour renews it once it is due (less than a third of its lifetime left); `renewNow`
 * renews at once (`secondsite manager certificate renew`). A renewal makes a new key here, has the
 * vault sign it (authenticated by the current certificate), installs the pair crash-safely and swaps
 * the identity the vault client presents; the vault makes the new serial current at its first use.
 * One renewal at a time; a failed one is logged, shown in `show()` and tried again at the next round.
 */
import { X509Certificate } from 'node:crypto';
import { renewalDue, renewalDueAtMs } from '../../domain/pki/renewal-due.js';
import type { Logger } from '../../observability/logger.js';
import {
  createPendingKey,
  installPending,
  readKeyCertPair,
  recoverKeyCertPair,
  type KeyCertPair,
} from '../../pki/key-cert-pair.js';
import {
  certificateRenewalResultSchema,
  type CertificateRenewalResult,
} from '../../protocol/vault-api/vault-api.schema.js';
import { SecondsiteError } from '../../domain/errors.js';
import { providerCommonName } from '../../protocol/vault-api/provider-name.js';
import { RepeatingRound } from '../repeating-round.js';
import { providerCsrName, providerKeyPair, type ProviderRegistration } from './provider-registration.js';
import type { VaultClient } from './vault-client.js';

export const DEFAULT_CERTIFICATE_CHECK_MS = 3600 * 1000;

export interface CertificateView {
  readonly serial: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** From when the round renews it. */
  readonly renewalDueAt: string;
  readonly lastRenewedAt: string | null;
  readonly lastError: string | null;
}

export interface ProviderCertificateOptions {
  readonly dataDir: string;
  readonly registration: ProviderRegistration;
  readonly certPem: string;
  readonly vaultCaCertPem: string;
  readonly client: VaultClient;
  readonly log: Logger;
  /** How often the round looks (default an hour). */
  readonly checkIntervalMs?: number;
  /** Renew when less than this fraction of the lifetime remains (default a third). */
  readonly remainingFraction?: number;
}

export class ProviderCertificate {
  private certPem: string;
  private lastRenewedAt: string | null = null;
  private lastError: string | null = null;
  private renewing: Promise<CertificateView> | null = null;
  private readonly rounds: RepeatingRound;

  constructor(private readonly options: ProviderCertificateOptions) {
    this.certPem = options.certPem;
    this.rounds = new RepeatingRound(
      () => this.renewIfDue(),
      options.checkIntervalMs ?? DEFAULT_CERTIFICATE_CHECK_MS,
    );
  }

  start(): void {
    this.rounds.start();
  }

  stop(): Promise<void> {
    return this.rounds.stop();
  }

  show(): CertificateView {
    const x = new X509Certificate(this.certPem);
    const validity = { notBeforeMs: Date.parse(x.validFrom), notAfterMs: Date.parse(x.validTo) };
    return {
      serial: x.serialNumber.toUpperCase(),
      notBefore: new Date(validity.notBeforeMs).toISOString(),
      notAfter: new Date(validity.notAfterMs).toISOString(),
      renewalDueAt: new Date(renewalDueAtMs(validity, this.options.remainingFraction)).toISOString(),
      lastRenewedAt: this.lastRenewedAt,
      lastError: this.lastError,
    };
  }

  /** Renews at once (a renewal already under way is joined, not repeated). */
  renewNow(): Promise<CertificateView> {
    this.renewing ??= this.renew().finally(() => {
      this.renewing = null;
    });
    return this.renewing;
  }

  private async renewIfDue(): Promise<void> {
    const view = this.show();
    const due = renewalDue(
      { notBeforeMs: Date.parse(view.notBefore), notAfterMs: Date.parse(view.notAfter) },
      Date.now(),
      this.options.remainingFraction,
    );
    if (!due) return;
    try {
      await this.renewNow();
    } catch {
      // logged and kept in lastError by renew(); the next round tries again
    }
  }

  private use(pair: KeyCertPair): void {
    this.options.client.useClientCert(pair);
    this.certPem = pair.certPem;
  }

  /** The answer must be this node's certificate from the vault CA (installPending checks the key). */
  private checkIssued(certPem: string): void {
    const { registration, vaultCaCertPem } = this.options;
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(vaultCaCertPem);
    const cn = providerCommonName(registration.managementServerId, registration.nodeName);
    if (!(
      cert.checkIssued(ca) &&
      cert.verify(ca.publicKey) &&
      cert.subject.split('\n').includes(`CN=${cn}`)
    )) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INTERNAL',
        `the vault answered a certificate that is not ${cn}'s from its CA; nothing was installed`,
      );
    }
  }

  private async renew(): Promise<CertificateView> {
    const { registration, client, log } = this.options;
    const pair = providerKeyPair(this.options.dataDir);
    try {
      const csrPem = await createPendingKey(pair, providerCsrName(registration));
      const answer = await client.post<CertificateRenewalResult>(
        `/v1/management-servers/${encodeURIComponent(registration.managementServerId)}/certificate`,
        { csrPem },
      );
      const parsed = certificateRenewalResultSchema.safeParse(answer);
      if (!parsed.success) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INTERNAL',
          'the vault answered something that is not a certificate',
        );
      }
      this.checkIssued(parsed.data.certPem);
      this.use(await installPending(pair, parsed.data.certPem));
      this.lastRenewedAt = new Date().toISOString();
      this.lastError = null;
      log.info('provider certificate renewed', {
        serial: parsed.data.serial,
        notAfter: parsed.data.notAfter,
      });
      return this.show();
    } catch (e) {
      // no pending key is left behind; an install that failed past its commit point is finished
      await recoverKeyCertPair(pair)
        .then(() => readKeyCertPair(pair))
        .then((onDisk) => {
          if (onDisk.certPem !== this.certPem) this.use(onDisk);
        })
        .catch(() => undefined);
      this.lastError = (e as Error).message;
      log.warn('provider certificate renewal failed; the next round tries again', { error: this.lastError });
      throw e;
    }
  }
}

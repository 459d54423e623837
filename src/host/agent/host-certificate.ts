/**
 * This host's certificate, renewed by its management server (docs/design/certificate-renewal.md
 * section 5), through two peer API routes only the manager may call:
 *
 *   POST /peer/v1/manager/certificate/request   a new key `<pkiDir>/<hostId>.key.next` (replacing
 *                                               a pending one) and its CSR;
 *   POST /peer/v1/manager/certificate           {certPem}: checked (this host id as CN and DNS SAN,
 *                                               issued by this host's site CA, certifying the pending
 *                                               key), installed as a crash-safe pair
 *                                               (pki/key-cert-pair.ts), then `onInstalled` swaps it into
 *                                               the replication listener and later outgoing connections.
 *
 * The old certificate stays valid until its end (hosts are checked by CA, name and issuer, not by
 * serial), so connections open during the swap go on.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Route } from '../../control-api/control-server.js';
import { SecondsiteError } from '../../domain/errors.js';
import { identityPaths } from '../../pki/ca.js';
import { createPendingKey, installPending, keyCertPairPaths } from '../../pki/key-cert-pair.js';
import {
  HOST_CERTIFICATE_INSTALL_PATH,
  HOST_CERTIFICATE_REQUEST_PATH,
  hostCertificateInstallBodySchema,
  type HostCertificateInstalled,
} from '../../protocol/host-api/manager-peer.schema.js';
import { parseBody } from '../../protocol/host-api/schema.js';
import type { HostConfig } from './host-config.js';
import { AsyncMutex } from '../recovery-points/async-lock.js';
import { requireManagerCaller } from './manager-caller.js';

export interface HostCertificateDeps {
  readonly config: HostConfig;
  /** Called after a new pair is installed: swap it into what serves and dials. */
  readonly onInstalled: () => Promise<void>;
}

/** `<pkiDir>/<hostId>.key|.crt`, the pair enrolment and renewal install. */
export function hostKeyPair(config: HostConfig): ReturnType<typeof keyCertPairPaths> {
  return keyCertPairPaths(config.replication.pkiDir, config.hostId);
}

/** Refuses a certificate that is not this host's from its site CA (ca.crt). */
async function checkIssued(config: HostConfig, certPem: string): Promise<X509Certificate> {
  const hostId = config.hostId;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      'the certificate is not a PEM X.509 certificate',
    );
  }
  const siteCa = new X509Certificate(
    await readFile(identityPaths(config.replication.pkiDir, hostId).caCertPath),
  );
  const sans = (cert.subjectAltName ?? '').split(',').map((s) => s.trim());
  const ok =
    cert.subject.split('\n').includes(`CN=${hostId}`) &&
    sans.includes(`DNS:${hostId}`) &&
    cert.checkIssued(siteCa) &&
    cert.verify(siteCa.publicKey);
  if (!ok) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `the certificate is not one for host ${hostId} from this host's site CA; nothing was installed`,
    );
  }
  return cert;
}

export function hostCertificateRoutes(deps: () => HostCertificateDeps): Route[] {
  // one at a time: a new request must not replace the pending key while an install uses it
  const oneAtATime = new AsyncMutex();
  return [
    {
      method: 'POST',
      path: HOST_CERTIFICATE_REQUEST_PATH,
      handler: async ({ callerHostId }) => {
        requireManagerCaller(callerHostId);
        const { config } = deps();
        const csrPem = await oneAtATime.run(() => createPendingKey(hostKeyPair(config), config.hostId));
        return { body: { csrPem } };
      },
    },
    {
      method: 'POST',
      path: HOST_CERTIFICATE_INSTALL_PATH,
      handler: async ({ callerHostId, body }) => {
        requireManagerCaller(callerHostId);
        const { config, onInstalled } = deps();
        const { certPem } = parseBody(hostCertificateInstallBodySchema, body, 'certificate');
        const cert = await checkIssued(config, certPem);
        await oneAtATime.run(async () => {
          await installPending(hostKeyPair(config), certPem);
          await onInstalled();
        });
        const installed: HostCertificateInstalled = {
          hostId: config.hostId,
          serial: cert.serialNumber.toUpperCase(),
          notAfter: new Date(cert.validTo).toISOString(),
        };
        return { body: installed };
      },
    },
  ];
}

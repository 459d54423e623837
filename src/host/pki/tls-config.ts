/**
 * TLS options for host-to-host replication: TLS 1.3 only, mutual (the server requests and verifies a
 * client certificate from the site CA), AES-128-GCM preferred (fastest suite in Node here). The host id
 * of a peer is the CN of its certificate, which must also be a DNS SAN (ca.ts issues them that way).
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ConnectionOptions, PeerCertificate, TLSSocket, TlsOptions } from 'node:tls';
import { isSecondsiteError, SecondsiteError } from '../../domain/errors.js';
import { identityPaths } from '../../pki/ca.js';
import { keyCertPairPaths, readKeyCertPair } from '../../pki/key-cert-pair.js';

/** TLS 1.3 suites in order of preference. */
export const REPLICATION_CIPHER_SUITES =
  'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

export interface TlsIdentity {
  hostId: string;
  key: Buffer;
  cert: Buffer;
  /** Trust anchors: the CA certificate(s). */
  ca: Buffer;
  /**
   * The CAs (SHA-256 fingerprints) that may issue a given peer host's certificate, or null when the
   * host is not pinned (any trust anchor may). With several sites' CAs trusted, this keeps one site's
   * CA from presenting itself as another site's replica host (docs/design/protection.md section 2).
   */
  issuersOf?: (hostId: string) => ReadonlySet<string> | null;
}

/**
 * Loads `<dir>/<hostId>.key`, `<hostId>.crt` (a pair: key-cert-pair.ts, as renewal installs it) and
 * `ca.crt`, as issued by `issueHostCert` or enrolment.
 */
export async function loadTlsIdentity(dir: string, hostId: string): Promise<TlsIdentity> {
  const p = identityPaths(dir, hostId);
  try {
    const [pair, ca] = await Promise.all([
      readKeyCertPair(keyCertPairPaths(dir, hostId)),
      readFile(p.caCertPath),
    ]);
    return { hostId, key: Buffer.from(pair.keyPem), cert: Buffer.from(pair.certPem), ca };
  } catch (e) {
    if (isSecondsiteError(e, 'SECONDSITE_ERR_INTERNAL')) throw e; // a key and certificate that differ
    throw new SecondsiteError(
      'SECONDSITE_ERR_NOT_FOUND',
      `cannot read the TLS identity of ${hostId} in ${dir}: issue one with 'secondsite ca issue --name ${hostId} --out ${dir}'`,
      { dir, hostId },
      { cause: e },
    );
  }
}

/** Server side (replica): mutual TLS 1.3, client certificates required and verified. */
export function replicationServerOptions(id: TlsIdentity): TlsOptions {
  return {
    key: id.key,
    cert: id.cert,
    ca: id.ca,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: REPLICATION_CIPHER_SUITES,
    honorCipherOrder: true,
    handshakeTimeout: 10_000,
  };
}

/** Client side (primary): presents its certificate and accepts only `expectedPeerHostId`'s. */
export function replicationClientOptions(id: TlsIdentity, expectedPeerHostId: string): ConnectionOptions {
  return {
    key: id.key,
    cert: id.cert,
    ca: id.ca,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: REPLICATION_CIPHER_SUITES,
    servername: expectedPeerHostId,
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const got = hostIdOfCertificate(cert);
      if (got !== expectedPeerHostId) {
        return new SecondsiteError(
          'SECONDSITE_ERR_UNAUTHORIZED',
          `the replica presented a certificate for '${got ?? '?'}' but '${expectedPeerHostId}' was expected: check the replica address`,
          { expected: expectedPeerHostId, got },
        );
      }
      const pins = id.issuersOf?.(expectedPeerHostId) ?? null;
      const issuer = (cert as Partial<PeerCertificate> & { issuerCertificate?: PeerCertificate })
        .issuerCertificate?.fingerprint256;
      if (pins !== null && (issuer === undefined || !pins.has(issuer))) {
        return new SecondsiteError(
          'SECONDSITE_ERR_UNAUTHORIZED',
          `the replica presented a certificate for '${expectedPeerHostId}' from a CA that does not issue that host's certificates (its trust group's CA): refusing it`,
          { expected: expectedPeerHostId, issuer: issuer ?? null },
        );
      }
      return undefined;
    },
  };
}

/** The host id a certificate names (CN that is also a DNS SAN), or null. */
export function hostIdOfCertificate(cert: PeerCertificate): string | null {
  const subject = cert.subject as unknown as Record<string, string | string[] | undefined> | undefined;
  const cnRaw = subject?.CN;
  const cn = Array.isArray(cnRaw) ? null : (cnRaw ?? null);
  if (!cn) return null;
  const sans = (cert.subjectaltname ?? '').split(',').map((s) => s.trim());
  return sans.includes(`DNS:${cn}`) ? cn : null;
}

/** The authenticated peer's host id, or null if the peer is not authenticated by the CA. */
export function peerHostId(socket: TLSSocket): string | null {
  if (!socket.authorized) return null;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return null;
  return hostIdOfCertificate(cert);
}

/** The SHA-256 fingerprint of the CA that issued the authenticated peer's certificate, or null. */
export function peerIssuerFingerprint(socket: TLSSocket): string | null {
  if (!socket.authorized) return null;
  const cert = socket.getPeerCertificate(true);
  const issuer = (cert as Partial<typeof cert> | undefined)?.issuerCertificate;
  return issuer?.fingerprint256 ?? null;
}

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificates of a PEM bundle; SECONDSITE_ERR_INVALID_ARGUMENT when one does not parse. */
export function certificatesOf(pem: string | Buffer, what: string): X509Certificate[] {
  const blocks = pem.toString().match(PEM_CERT_RE) ?? [];
  if (blocks.length === 0) {
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `${what} holds no PEM certificate`);
  }
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `${what} holds a certificate that does not parse: ${(e as Error).message}`,
      );
    }
  });
}

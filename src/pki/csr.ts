/**
 * Certificate requests and signing for identities the vault issues (docs/design/vault.md section 4):
 * a provider makes its key and a CSR locally (the key never leaves its machine), the vault signs the
 * CSR with its CA, choosing the subject itself (it ignores what the CSR asks for but the public key).
 * The vault's own HTTPS server certificate comes from the same CA. All through the openssl command.
 */
import { X509Certificate, randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecondsiteError } from '../domain/errors.js';
import { assertHostId, caPaths, exists, identityPaths, openssl, type IssuedIdentity } from './ca.js';

const MAX_CSR_BYTES = 16 * 1024;

async function inTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'secondsite-pki-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Makes an EC P-256 key at `keyPath` (0600) and returns a CSR for it (PEM). */
export async function createKeyAndCsr(keyPath: string, commonName: string): Promise<string> {
  await writeFile(keyPath, '', { mode: 0o600 }); // 0600 before openssl writes the key into it
  await chmod(keyPath, 0o600);
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyPath]);
  await chmod(keyPath, 0o600);
  return inTempDir(async (dir) => {
    const csr = join(dir, 'req.csr');
    await openssl(['req', '-new', '-key', keyPath, '-subj', `/O=secondsite/CN=${commonName}`, '-out', csr]);
    return readFile(csr, 'utf8');
  });
}

export interface SignedCertificate {
  readonly certPem: string;
  /** Upper-case hex, as X509Certificate.serialNumber prints it. */
  readonly serialHex: string;
  readonly notAfterMs: number;
}

/**
 * Signs `csrPem` with the CA in `caDir` as `commonName` (CN and DNS SAN), with the given extended key
 * usage. Refuses a CSR that is not a well-formed PEM request whose signature verifies.
 */
export async function signCsr(opts: {
  caDir: string;
  csrPem: string;
  commonName: string;
  usage: 'clientAuth' | 'serverAuth' | 'serverAuth,clientAuth';
  days?: number;
  ipSans?: readonly string[];
  /** More DNS names besides the CN. */
  dnsSans?: readonly string[];
}): Promise<SignedCertificate> {
  const ca = caPaths(opts.caDir);
  if (!(await exists(ca.keyPath))) {
    throw new SecondsiteError('SECONDSITE_ERR_NOT_FOUND', `no CA in ${opts.caDir}`, { caDir: opts.caDir });
  }
  if (
    opts.csrPem.length > MAX_CSR_BYTES ||
    !/^-----BEGIN CERTIFICATE REQUEST-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE REQUEST-----\s*$/.test(
      opts.csrPem,
    )
  ) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      'the certificate request is not one PEM-encoded CSR (at most 16 KiB)',
    );
  }
  const serial = randomBytes(16).toString('hex');
  return inTempDir(async (dir) => {
    const csr = join(dir, 'req.csr');
    const ext = join(dir, 'req.ext');
    const out = join(dir, 'cert.pem');
    await writeFile(csr, opts.csrPem);
    const sans = [
      `DNS:${opts.commonName}`,
      ...(opts.dnsSans ?? []).map((d) => `DNS:${d}`),
      ...(opts.ipSans ?? []).map((ip) => `IP:${ip}`),
    ].join(',');
    await writeFile(
      ext,
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyAgreement',
        `extendedKeyUsage=${opts.usage}`,
        `subjectAltName=${sans}`,
        '',
      ].join('\n'),
    );
    try {
      await openssl(['req', '-in', csr, '-noout', '-verify']);
    } catch {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        "the certificate request's signature does not verify; make a new one",
      );
    }
    await openssl([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.certPath,
      '-CAkey',
      ca.keyPath,
      '-set_serial',
      `0x${serial}`,
      '-days',
      String(opts.days ?? 365),
      '-sha256',
      '-subj',
      `/O=secondsite/CN=${opts.commonName}`,
      '-extfile',
      ext,
      '-out',
      out,
    ]);
    const certPem = await readFile(out, 'utf8');
    const x = new X509Certificate(certPem);
    return { certPem, serialHex: x.serialNumber.toUpperCase(), notAfterMs: Date.parse(x.validTo) };
  });
}

/**
 * Issues a key and certificate for host `name` (CN and DNS SAN = name, serverAuth + clientAuth: a host
 * is both ends of replication) into `outDir`, signed by the CA in `caDir`, with a copy of the CA
 * certificate (the trust anchor the host needs).
 */
export async function issueHostCert(opts: {
  caDir: string;
  name: string;
  outDir: string;
  days?: number;
}): Promise<IssuedIdentity> {
  assertHostId(opts.name);
  const ca = caPaths(opts.caDir);
  if (!(await exists(ca.keyPath)) || !(await exists(ca.certPath))) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_NOT_FOUND',
      `no CA in ${opts.caDir}: run 'secondsite ca init ${opts.caDir}' first`,
      {
        caDir: opts.caDir,
      },
    );
  }
  const out = identityPaths(opts.outDir, opts.name);
  await mkdir(opts.outDir, { recursive: true, mode: 0o700 });
  const csrPem = await createKeyAndCsr(out.keyPath, opts.name);
  const signed = await signCsr({
    caDir: opts.caDir,
    csrPem,
    commonName: opts.name,
    usage: 'serverAuth,clientAuth',
    days: opts.days ?? 825,
  });
  await writeFile(out.certPath, signed.certPem);
  await copyFile(ca.certPath, out.caCertPath);
  return out;
}

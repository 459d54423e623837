/**
 * A small certificate authority for host identities, built on the `openssl` command (node:crypto
 * cannot sign X.509). One CA per deployment (or per site pair) signs host certificates whose subject CN
 * and DNS SAN are the host id; replication uses them for mutual TLS 1.3 (tls-config.ts).
 *
 * Layout: `<caDir>/ca.key` (mode 0600), `<caDir>/ca.crt`. Issued: `<outDir>/<host>.key` (0600),
 * `<outDir>/<host>.crt`, and a copy of `ca.crt` (the trust anchor the host needs).
 * Keys are EC P-256; host certificates carry serverAuth + clientAuth (a host is both ends).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SecondsiteError } from '../domain/errors.js';

const run = promisify(execFile);

/** Host ids are DNS names: labels of a-z, 0-9 and '-', 1-63 chars, not starting or ending with '-'. */
const HOST_ID_RE =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

export function assertHostId(name: string): void {
  if (!HOST_ID_RE.test(name)) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `'${name}' is not a valid host id: use a lower-case DNS name such as host-a or host-a.site1.example`,
      { name },
    );
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs the openssl command; a failure names the subcommand and says what to install. */
export async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 30_000 });
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr ?? '';
    throw new SecondsiteError(
      'SECONDSITE_ERR_INTERNAL',
      `openssl ${args[0]} failed: ${stderr.trim() || String(e)}. Is the openssl command installed (Debian package openssl)?`,
      {},
      { cause: e },
    );
  }
}

export interface CaPaths {
  keyPath: string;
  certPath: string;
}

export function caPaths(caDir: string): CaPaths {
  return { keyPath: join(caDir, 'ca.key'), certPath: join(caDir, 'ca.crt') };
}

/** Creates a new CA in `caDir`. Refuses to overwrite an existing CA key. */
export async function initCa(caDir: string, opts: { name?: string; days?: number } = {}): Promise<CaPaths> {
  const paths = caPaths(caDir);
  if (await exists(paths.keyPath)) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_ALREADY_EXISTS',
      `a CA already exists in ${caDir}; use it, or choose an empty directory for a new CA`,
      { caDir },
    );
  }
  await mkdir(caDir, { recursive: true, mode: 0o700 });
  await writeFile(paths.keyPath, '', { mode: 0o600 }); // 0600 before openssl writes the key into it
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', paths.keyPath]);
  await chmod(paths.keyPath, 0o600);
  await openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    paths.keyPath,
    '-sha256',
    '-days',
    String(opts.days ?? 3650),
    '-subj',
    `/O=secondsite/CN=${opts.name ?? 'secondsite replication CA'}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE,pathlen:0',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    paths.certPath,
  ]);
  return paths;
}

export interface IssuedIdentity {
  hostId: string;
  keyPath: string;
  certPath: string;
  caCertPath: string;
}

/** Paths of an issued identity in `dir` (see issueHostCert). */
export function identityPaths(dir: string, hostId: string): IssuedIdentity {
  return {
    hostId,
    keyPath: join(dir, `${hostId}.key`),
    certPath: join(dir, `${hostId}.crt`),
    caCertPath: join(dir, 'ca.crt'),
  };
}

/** Issues a key and certificate for host `name` (CN and DNS SAN = name), signed by the CA in `caDir`. */
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
  const work = await mkdtemp(join(tmpdir(), 'secondsite-ca-'));
  try {
    const csr = join(work, 'host.csr');
    const ext = join(work, 'host.ext');
    await writeFile(
      ext,
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyAgreement',
        'extendedKeyUsage=serverAuth,clientAuth',
        `subjectAltName=DNS:${opts.name}`,
        '',
      ].join('\n'),
    );
    await writeFile(out.keyPath, '', { mode: 0o600 });
    await chmod(out.keyPath, 0o600); // 0600 before openssl writes the key into it
    await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', out.keyPath]);
    await openssl([
      'req',
      '-new',
      '-key',
      out.keyPath,
      '-subj',
      `/O=secondsite/CN=${opts.name}`,
      '-out',
      csr,
    ]);
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
      `0x${randomBytes(16).toString('hex')}`,
      '-days',
      String(opts.days ?? 825),
      '-sha256',
      '-extfile',
      ext,
      '-out',
      out.certPath,
    ]);
    await copyFile(ca.certPath, out.caCertPath);
    return out;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * A small certificate authority for host identities, built on the `openssl` command (node:crypto
 * cannot sign X.509). One CA per deployment (or per site pair) signs host certificates whose subject CN
 * and DNS SAN are the host id; replication uses them for mutual TLS 1.3 (tls-config.ts).
 *
 * Layout: `<caDir>/ca.key` (mode 0600), `<caDir>/ca.crt`. Keys are EC P-256. Certificates are issued
 * from certificate requests by csr.ts (host identities: `issueHostCert`; vault-issued ones: `signCsr`).
 */
import { execFile } from 'node:child_process';
import { access, chmod, mkdir, writeFile } from 'node:fs/promises';
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

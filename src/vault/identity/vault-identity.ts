/**
 * The vault's identity and CA, shared by every vault process on one database (docs/design/vault.md
 * section 1): the first process to start makes the CA and inserts it; the others find it. Each process
 * writes the CA to its private runtime folder (0700) for the openssl command, and issues itself an
 * HTTPS server certificate from it, so clients trust every vault process through one CA certificate.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Queryable } from '../../persistence/database.js';
import { caPaths, initCa } from '../../pki/ca.js';
import { createKeyAndCsr, signCsr } from '../../pki/csr.js';
import { newId } from '../auth/secret-token.js';

export interface VaultIdentity {
  readonly vaultId: string;
  readonly name: string;
  readonly caCertPem: string;
  /** Folder with ca.key / ca.crt for signing (this process's copy). */
  readonly caDir: string;
}

export interface ServerTls {
  readonly keyPem: string;
  readonly certPem: string;
  readonly caCertPem: string;
}

/** Finds the vault's identity, or creates it (first start on this database). */
export async function ensureVaultIdentity(
  db: Queryable,
  runtimeDir: string,
  name: string,
): Promise<VaultIdentity> {
  let row = await readIdentity(db);
  if (!row) {
    const work = await mkdtemp(join(tmpdir(), 'secondsite-vault-ca-'));
    try {
      const ca = await initCa(join(work, 'ca'), { name: `secondsite vault ${name}` });
      await db.query(
        `INSERT INTO vault_identity (vault_id, name, ca_cert_pem, ca_key_pem) VALUES ($1, $2, $3, $4)
         ON CONFLICT (singleton) DO NOTHING`,
        [newId('vault'), name, await readFile(ca.certPath, 'utf8'), await readFile(ca.keyPath, 'utf8')],
      );
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    row = await readIdentity(db);
    if (!row) throw new Error('vault identity missing after insert');
  }
  const caDir = join(runtimeDir, 'ca');
  await mkdir(caDir, { recursive: true, mode: 0o700 });
  const paths = caPaths(caDir);
  await writeFile(paths.keyPath, row.ca_key_pem, { mode: 0o600 });
  await chmod(paths.keyPath, 0o600);
  await writeFile(paths.certPath, row.ca_cert_pem);
  return { vaultId: row.vault_id, name: row.name, caCertPem: row.ca_cert_pem, caDir };
}

async function readIdentity(
  db: Queryable,
): Promise<{ vault_id: string; name: string; ca_cert_pem: string; ca_key_pem: string } | undefined> {
  const r = await db.query<{ vault_id: string; name: string; ca_cert_pem: string; ca_key_pem: string }>(
    'SELECT vault_id, name, ca_cert_pem, ca_key_pem FROM vault_identity',
  );
  return r.rows[0];
}

/** A server certificate for this vault process: CN `hostName`, SANs the name, localhost and 127.0.0.1. */
export async function issueServerTls(
  identity: VaultIdentity,
  runtimeDir: string,
  hostName: string,
): Promise<ServerTls> {
  const dir = join(runtimeDir, 'tls');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keyPath = join(dir, 'server.key');
  const csrPem = await createKeyAndCsr(keyPath, hostName);
  const signed = await signCsr({
    caDir: identity.caDir,
    csrPem,
    commonName: hostName,
    usage: 'serverAuth',
    days: 825,
    ipSans: ['127.0.0.1'],
    dnsSans: hostName === 'localhost' ? [] : ['localhost'],
  });
  return { keyPem: await readFile(keyPath, 'utf8'), certPem: signed.certPem, caCertPem: identity.caCertPem };
}

/**
 * A vault in this test process on a fresh database of the test PostgreSQL, with the helpers the vault
 * tests share: clients for the admin, for users of each role, and for a registered provider, and a
 * provider's certificate renewal.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { Role } from '../../src/domain/vault/rbac.js';
import {
  providerClient,
  registerProvider,
  type ProviderIdentity,
} from '../../src/manager/provider/provider-registration.js';
import { VaultClient } from '../../src/manager/provider/vault-client.js';
import { silentLogger } from '../../src/observability/logger.js';
import { openDatabase, type Database } from '../../src/persistence/database.js';
import { createKeyAndCsr } from '../../src/pki/csr.js';
import type { CertificateRenewalResult } from '../../src/protocol/vault-api/vault-api.schema.js';
import type { TestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { VaultServer } from '../../src/vault/vault-server.js';

/** A migrated vault database of its own (no vault process), dropped after the test. */
export async function freshVaultDatabase(
  server: TestPostgres,
  t: Pick<TestContext, 'after'>,
): Promise<Database> {
  const url = await server.freshDatabase();
  const dir = await mkdtemp(join(tmpdir(), 'ss-vault-db-'));
  const db = await openDatabase({ databaseUrl: url, dataDir: dir, component: 'vault' });
  t.after(async () => {
    await db.close();
    await server.dropDatabase(url);
    await rm(dir, { recursive: true, force: true });
  });
  return db;
}

export interface TestVault {
  vault: VaultServer;
  dataDir: string;
  databaseUrl: string;
  admin: VaultClient;
  /** The first administrator's token, when this vault process made it (one per database). */
  adminToken: string | null;
  /** A client with another token, or none. */
  client(token?: string): VaultClient;
  /** A user of `role` with a token (created through the API). */
  userClient(role: Role): Promise<VaultClient>;
  /** Writes a registration key file (through the API) and returns its path. */
  keyFile(options?: { expiresInHours?: number }): Promise<string>;
  /** Registers a management server (a provider identity in its own data dir). */
  register(
    name: string,
    node?: string,
  ): Promise<{ identity: ProviderIdentity; client: VaultClient; dataDir: string }>;
}

export async function startTestVault(
  pg: TestPostgres,
  t: Pick<TestContext, 'after'>,
  options: {
    databaseUrl?: string;
    heartbeatIntervalSeconds?: number;
    monitorIntervalMs?: number;
    alertWebhookUrl?: string;
  } = {},
): Promise<TestVault> {
  // dropped after the vault stopped (t.after hooks run in the order they were registered)
  const ownDatabase = options.databaseUrl === undefined;
  const databaseUrl = options.databaseUrl ?? (await pg.freshDatabase());
  const dataDir = await mkdtemp(join(tmpdir(), 'ss-vault-'));
  const vault = await VaultServer.start({
    dataDir,
    databaseUrl,
    log: silentLogger,
    heartbeatIntervalSeconds: options.heartbeatIntervalSeconds ?? 1,
    monitorIntervalMs: options.monitorIntervalMs ?? 250,
    alertWebhookUrl: options.alertWebhookUrl,
  });
  const dirs = [dataDir];
  t.after(async () => {
    await vault.stop();
    if (ownDatabase) await pg.dropDatabase(databaseUrl);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const caCertPem = vault.identity.caCertPem;
  const token = (await readFile(join(dataDir, 'admin.token'), 'utf8').catch(() => '')).trim();
  const client = (tok?: string): VaultClient =>
    new VaultClient({ url: vault.url, caCertPem, ...(tok ? { token: tok } : {}) });
  const admin = client(token);
  let users = 0;
  const keyFile = async (o: { expiresInHours?: number } = {}): Promise<string> => {
    const key = await admin.post<object>('/v1/registration-keys', o);
    const dir = await mkdtemp(join(tmpdir(), 'ss-key-'));
    dirs.push(dir);
    const path = join(dir, 'vault.key');
    await writeFile(path, JSON.stringify(key), { mode: 0o600 });
    return path;
  };
  return {
    vault,
    dataDir,
    databaseUrl,
    admin,
    adminToken: token || null,
    client,
    async userClient(role) {
      const name = `${role.toLowerCase()}-${++users}`;
      await admin.post('/v1/users', { name, role });
      const made = await admin.post<{ token: string }>(`/v1/users/${name}/tokens`, {});
      return client(made.token);
    },
    keyFile,
    async register(name, node = 'node-1') {
      const file = await keyFile();
      const msDir = await mkdtemp(join(tmpdir(), 'ss-manager-'));
      dirs.push(msDir);
      const identity = await registerProvider({
        dataDir: msDir,
        keyFile: file,
        managementServerName: name,
        nodeName: node,
      });
      return { identity, client: providerClient(identity), dataDir: msDir };
    },
  };
}

/** Asks the vault for a new certificate with `client`; returns a client presenting the answer. */
export async function renew(
  v: TestVault,
  client: VaultClient,
  msId: string,
  csrSubject = 'anything',
): Promise<{ answer: CertificateRenewalResult; client: VaultClient }> {
  const dir = await mkdtemp(join(tmpdir(), 'ss-renew-'));
  try {
    const keyPath = join(dir, 'next.key');
    const csrPem = await createKeyAndCsr(keyPath, csrSubject);
    const answer = await client.post<CertificateRenewalResult>(`/v1/management-servers/${msId}/certificate`, {
      csrPem,
    });
    const keyPem = await readFile(keyPath, 'utf8');
    return {
      answer,
      client: new VaultClient({
        url: v.vault.url,
        caCertPem: v.vault.identity.caCertPem,
        clientCert: { keyPem, certPem: answer.certPem },
      }),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const beat = (client: VaultClient, msId: string): Promise<unknown> =>
  client.post(`/v1/management-servers/${msId}/heartbeat`, {});

/**
 * A management server in this test process (registered with a test vault, its own fresh database of
 * the test PostgreSQL, enrolment listener on a free port), and host state folders for enrolment tests.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { ManagerServer } from '../../src/manager/manager-server.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { TestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { startTestVault, type TestVault } from '../vault/vault-fixtures.js';

export interface TestManager {
  manager: ManagerServer;
  dataDir: string;
  databaseUrl: string;
  vault: TestVault;
}

export async function startTestManager(
  pg: TestPostgres,
  t: Pick<TestContext, 'after'>,
  options: {
    name?: string;
    hostPollIntervalMs?: number;
    certificateCheckIntervalMs?: number;
    certificateRemainingFraction?: number;
  } = {},
): Promise<TestManager> {
  const vault = await startTestVault(pg, t);
  const { dataDir } = await vault.register(options.name ?? 'vmm-east');
  const databaseUrl = await pg.freshDatabase();
  const manager = await ManagerServer.start({
    dataDir,
    databaseUrl,
    log: silentLogger,
    enrolListen: { host: '127.0.0.1', port: 0 },
    hostPollIntervalMs: options.hostPollIntervalMs ?? 60_000,
    ...(options.certificateCheckIntervalMs !== undefined
      ? { certificateCheckIntervalMs: options.certificateCheckIntervalMs }
      : {}),
    ...(options.certificateRemainingFraction !== undefined
      ? { certificateRemainingFraction: options.certificateRemainingFraction }
      : {}),
  });
  // runs after the vault's hook (registration order): the manager's heartbeats just fail by then
  t.after(async () => {
    await manager.stop();
    await pg.dropDatabase(databaseUrl);
  });
  return { manager, dataDir, databaseUrl, vault };
}

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A host state folder with host.json (no agent running). */
export async function hostStateDir(
  t: Pick<TestContext, 'after'>,
  hostId: string,
  port = 18084,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `ss-${hostId}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(
    join(dir, 'host.json'),
    JSON.stringify({ hostId, replication: { listenHost: '127.0.0.1', listenPort: port } }),
  );
  return dir;
}

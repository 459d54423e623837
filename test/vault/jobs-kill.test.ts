/**
 * DESIGN.md section 6, "orchestration is durable", with real processes: two `secondsite vault serve`
 * processes on one database; the one running an inventory-refresh job is killed with SIGKILL while
 * the management server runs the job's command. The other process takes the job over after the
 * lease, finds the command the dead one recorded (answered meanwhile through the survivor) instead
 * of sending another, and finishes the job once: one command, delivered once, run once.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pg from 'pg';
import { CommandLoop } from '../../src/manager/provider/command-loop.js';
import { providerClient, registerProvider } from '../../src/manager/provider/provider-registration.js';
import { VaultClient } from '../../src/manager/provider/vault-client.js';
import { silentLogger } from '../../src/observability/logger.js';
import { openDatabase, type Database } from '../../src/persistence/database.js';
import type { JobDetail } from '../../src/protocol/vault-api/jobs.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import {
  registerChildCleanup,
  spawnSecondsite,
  type ChildHandle,
} from '../../src/testing/process/child-process.js';

registerChildCleanup();
const server = useTestPostgres();
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function sql<T extends pg.QueryResultRow>(
  url: string,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end();
  }
}

async function poll<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Vault {
  child: ChildHandle;
  url: string;
  dataDir: string;
}

async function spawnVault(databaseUrl: string, root: string, name: string): Promise<Vault> {
  const dataDir = join(root, name);
  const child = spawnSecondsite(
    ['vault', 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--job-lease-seconds', '3'],
    { env: { DATABASE_URL: databaseUrl }, name },
  );
  const ready = await child.waitForReady(60_000);
  return { child, url: String(ready['url']), dataDir };
}

test('a vault process killed (SIGKILL) during a job: the other finishes it once; its command is delivered and run once', async (t) => {
  const databaseUrl = await server.freshDatabase();
  const mgrUrl = await server.freshDatabase();
  const root = await mkdtemp(join(tmpdir(), 'ss-jobkill-'));
  dirs.push(root);
  const vaults: Vault[] = [];
  let loop: CommandLoop | null = null;
  let mgrDb: Database | null = null;
  t.after(async () => {
    // in this order: the databases go last (t.after hooks run in registration order)
    await loop?.stop();
    await mgrDb?.close();
    for (const v of vaults) await v.child.stop();
    await server.dropDatabase(databaseUrl);
    await server.dropDatabase(mgrUrl);
  });
  const a = await spawnVault(databaseUrl, root, 'vault-a');
  vaults.push(a);
  const b = await spawnVault(databaseUrl, root, 'vault-b');
  vaults.push(b);
  const caCertPem = await readFile(join(a.dataDir, 'ca.crt'), 'utf8');
  const token = (await readFile(join(a.dataDir, 'admin.token'), 'utf8')).trim();
  const admin = (v: Vault): VaultClient => new VaultClient({ url: v.url, caCertPem, token });

  const key = await admin(a).post<object>('/v1/registration-keys', {});
  const keyFile = join(root, 'vault.key');
  await writeFile(keyFile, JSON.stringify(key), { mode: 0o600 });
  const identity = await registerProvider({
    dataDir: join(root, 'manager'),
    keyFile,
    managementServerName: 'site-a',
    nodeName: 'node-1',
  });
  const msId = identity.registration.managementServerId;

  const { jobId } = await admin(a).post<{ jobId: string }>(`/v1/management-servers/${msId}/refresh`, {});
  // the job's run has recorded its command: who runs it?
  const ownerPid = await poll('the job to record its command', async () => {
    const rows = await sql<{ lease_owner: string | null; recorded: boolean }>(
      databaseUrl,
      `SELECT q.lease_owner, EXISTS (SELECT 1 FROM provider_commands c WHERE c.job_id = q.id) AS recorded
       FROM jobs q WHERE q.id = $1`,
      [jobId],
    );
    const m = /^vault-.+-(\d+)-[0-9a-f]+$/.exec(rows[0]?.lease_owner ?? '');
    return rows[0]?.recorded && m ? Number(m[1]) : undefined;
  });
  const victim = vaults.find((v) => v.child.pid === ownerPid);
  const survivor = vaults.find((v) => v.child.pid !== ownerPid);
  assert.ok(victim && survivor, `the job runs in one of the two vaults (pid ${ownerPid})`);

  // the management server polls the survivor; its handler runs while the job's vault is killed
  mgrDb = await openDatabase({ databaseUrl: mgrUrl, dataDir: root, component: 'manager' });
  let runs = 0;
  let handlerStarted: () => void = () => {};
  const started = new Promise<void>((r) => (handlerStarted = r));
  let release: () => void = () => {};
  const released = new Promise<void>((r) => (release = r));
  loop = new CommandLoop(
    providerClient({ ...identity, registration: { ...identity.registration, vaultUrl: survivor.url } }),
    msId,
    mgrDb,
    silentLogger,
    { waitSeconds: 5, maxBackoffMs: 500 },
  );
  loop.register('inventory.sync', async () => {
    runs++;
    handlerStarted();
    await released;
    await sql(
      databaseUrl,
      'UPDATE management_servers SET inventory_version = 3 WHERE management_server_id = $1',
      [msId],
    );
    return { inventoryVersion: 3 };
  });
  loop.start();
  await started;
  const killedAt = Date.now();
  const exit = await victim.child.kill9();
  assert.equal(exit.signal, 'SIGKILL');
  release();

  const job = await poll(
    'the job to end',
    async () => {
      const j = await admin(survivor).get<JobDetail>(`/v1/jobs/${jobId}`);
      return ['Succeeded', 'Failed', 'Cancelled'].includes(j.state) ? j : undefined;
    },
    40_000,
  );
  assert.equal(job.state, 'Succeeded', JSON.stringify(job, null, 1));
  assert.ok(Date.now() - killedAt >= 2000, 'taken over no earlier than about the lease (3 s)');
  assert.deepEqual(job.result, { inventoryVersion: 3 });
  assert.equal(runs, 1, 'the command ran once');
  const commands = await sql<{ deliveries: number; state: string }>(
    databaseUrl,
    'SELECT deliveries, state FROM provider_commands WHERE job_id = $1',
    [jobId],
  );
  assert.deepEqual(commands, [{ deliveries: 1, state: 'done' }], 'one command, delivered once');
  const queue = await sql<{ attempts: number; state: string }>(
    databaseUrl,
    'SELECT attempts, state FROM jobs WHERE id = $1',
    [jobId],
  );
  assert.deepEqual(queue, [{ attempts: 2, state: 'succeeded' }], 'two runs: the killed one and the survivor');
  const events = job.events.map((e) => `${e.task ?? '-'}:${e.kind}`);
  assert.equal(events.filter((e) => e === '-:job.succeeded').length, 1, events.join(' '));
  assert.equal(events.filter((e) => e === '-:job.resumed').length, 1, events.join(' '));
  assert.deepEqual(
    job.tasks.map((x) => [x.name, x.state, x.runs]),
    [
      ['sync', 'Succeeded', 2],
      ['wait-inventory', 'Succeeded', 1],
    ],
  );
  const ran = await mgrDb.query<{ state: string; reported: boolean }>(
    'SELECT state, reported FROM provider_command_runs',
  );
  assert.deepEqual(ran.rows, [{ state: 'done', reported: true }]);
});

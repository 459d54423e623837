/**
 * The provider command channel and the inventory-refresh job against a real PostgreSQL, with the
 * manager's real command loop (its own manager database): a command queued through one vault process
 * is long-polled and answered through another; each command runs once, a result posted twice is
 * accepted once; a manager that never answers fails the task with a message that says so; another
 * site's provider can neither read nor answer this server's commands; and the CLI follows a job
 * (`management-server refresh --wait`, `job list|show|wait`) with its exit status.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import { SecondsiteError } from '../../src/domain/errors.js';
import { waitForJob } from '../../src/cli/vault-job.commands.js';
import { CommandLoop, type CommandHandler } from '../../src/manager/provider/command-loop.js';
import { providerClient, type ProviderIdentity } from '../../src/manager/provider/provider-registration.js';
import type { VaultClient } from '../../src/manager/provider/vault-client.js';
import { silentLogger } from '../../src/observability/logger.js';
import { openDatabase } from '../../src/persistence/database.js';
import type { JobDetail, ProviderCommand } from '../../src/protocol/vault-api/jobs.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { startTestVault, type TestVault } from './vault-fixtures.js';

const server = useTestPostgres();
const bin = new URL('../../bin/secondsite.mjs', import.meta.url).pathname;

async function managerLoop(
  t: TestContext,
  identity: ProviderIdentity,
  vaultUrl: string,
  handler: CommandHandler,
): Promise<CommandLoop> {
  const url = await server.freshDatabase();
  const dir = await mkdtemp(join(tmpdir(), 'ss-mgr-'));
  const db = await openDatabase({ databaseUrl: url, dataDir: dir, component: 'manager' });
  const client = providerClient({ ...identity, registration: { ...identity.registration, vaultUrl } });
  const loop = new CommandLoop(client, identity.registration.managementServerId, db, silentLogger, {
    waitSeconds: 10,
    maxBackoffMs: 500,
  });
  loop.register('inventory.sync', handler);
  t.after(async () => {
    await loop.stop();
    await db.close();
    await server.dropDatabase(url);
    await rm(dir, { recursive: true, force: true });
  });
  return loop;
}

async function waitJob(client: VaultClient, jobId: string): Promise<JobDetail> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const job = await client.get<JobDetail>(`/v1/jobs/${jobId}`);
    if (['Succeeded', 'Failed', 'Cancelled'].includes(job.state)) return job;
    if (Date.now() > deadline) assert.fail(`job still ${job.state}: ${JSON.stringify(job)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

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

async function cli(
  v: TestVault,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, [bin, ...args, '--vault-dir', v.dataDir], {
      encoding: 'utf8',
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

test('refresh: queued through one vault process, long-polled and answered through another; each command runs once', async (t) => {
  const databaseUrl = await server.freshDatabase();
  const one = await startTestVault(server, t, { databaseUrl });
  const two = await startTestVault(server, t, { databaseUrl });
  t.after(() => server.dropDatabase(databaseUrl));
  const owner = [one, two].find((v) => v.adminToken !== null) ?? one;
  const admin = owner.admin;
  const site = await owner.register('site-a');
  const msId = site.identity.registration.managementServerId;
  let runs = 0;
  let mode: 'ok' | 'fail' = 'ok';
  let ranAt = 0;
  const loop = await managerLoop(t, site.identity, two.vault.url, async () => {
    runs++;
    ranAt = Date.now();
    if (mode === 'fail') throw new SecondsiteError('SECONDSITE_ERR_IO', 'the hosts table is unreadable');
    // what the manager's inventory sync does: push the inventory (here: the vault's row), answer its version
    await sql(
      databaseUrl,
      'UPDATE management_servers SET inventory_version = 7 WHERE management_server_id = $1',
      [msId],
    );
    return { inventoryVersion: 7 };
  });
  loop.start();
  await new Promise((r) => setTimeout(r, 500)); // the loop's long-poll is waiting in process two
  const startedAt = Date.now();
  const started = await one.admin.raw('POST', `/v1/management-servers/${msId}/refresh`, {});
  assert.equal(started.status, 202, started.text);
  const { jobId } = JSON.parse(started.text) as { jobId: string };
  const job = await waitJob(admin, jobId);
  assert.equal(job.state, 'Succeeded', JSON.stringify(job));
  assert.deepEqual(job.result, { inventoryVersion: 7 });
  assert.ok(ranAt - startedAt < 3000, `delivered ${ranAt - startedAt} ms after it was queued`);
  assert.equal(runs, 1);
  const rows = await sql<{ command_id: string; deliveries: number; state: string }>(
    databaseUrl,
    'SELECT command_id, deliveries, state FROM provider_commands',
  );
  assert.equal(rows.length, 1);
  assert.equal(rows[0]?.deliveries, 1);
  assert.equal(rows[0]?.state, 'done');
  // a result posted again is accepted once
  const again = await site.client.post<{ accepted: boolean }>(
    `/v1/management-servers/${msId}/commands/${rows[0]?.command_id}/result`,
    { ok: true, result: { inventoryVersion: 99 } },
  );
  assert.equal(again.accepted, false);
  // the vault already holds version 7: the second refresh ends when the command answers 7
  const second = await admin.post<{ jobId: string }>(`/v1/management-servers/${msId}/refresh`, {});
  const secondJob = await waitJob(admin, second.jobId);
  assert.equal(secondJob.state, 'Succeeded');
  assert.equal(runs, 2);
  // a provider error fails the task with the server's code and message
  mode = 'fail';
  const failing = await admin.post<{ jobId: string }>(`/v1/management-servers/${msId}/refresh`, {});
  const failed = await waitJob(admin, failing.jobId);
  assert.equal(failed.state, 'Failed');
  assert.equal(failed.error?.code, 'SECONDSITE_ERR_IO');
  assert.match(
    failed.error?.message ?? '',
    /management server site-a failed command inventory\.sync \(.+\): the hosts table is unreadable/,
  );
  assert.equal(failed.tasks[0]?.state, 'Failed');
  assert.equal(failed.tasks[1]?.state, 'NotStarted');

  // the CLI, as a user runs it
  mode = 'ok';
  const refresh = await cli(owner, 'vault', 'management-server', 'refresh', 'site-a', '--wait');
  assert.equal(refresh.code, 0, refresh.stderr);
  assert.match(refresh.stdout, /Succeeded\s+Ask the management server to sync its inventory/);
  assert.match(refresh.stdout, /job [0-9a-f-]+ Succeeded: Refresh the inventory of management server site-a/);
  const list = await cli(owner, 'vault', 'job', 'list', '--state', 'Failed', '--output', 'json');
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual(
    (JSON.parse(list.stdout) as Array<{ jobId: string }>).map((j) => j.jobId),
    [failing.jobId],
  );
  const waitFailed = await cli(owner, 'vault', 'job', 'wait', failing.jobId, '--output', 'json');
  assert.equal(waitFailed.code, 1, 'a failed job exits non-zero');
  assert.equal((JSON.parse(waitFailed.stdout) as JobDetail).state, 'Failed');
  const show = await cli(owner, 'vault', 'job', 'show', failing.jobId);
  assert.match(show.stdout, /error SECONDSITE_ERR_IO: management server site-a failed command/);
  assert.match(show.stdout, /job\.failed/);
  // on a terminal, wait draws the tasks with progress bars (in place)
  const drawn: string[] = [];
  const io = { out: (x: string) => drawn.push(x), err: () => {} };
  assert.equal(await waitForJob(admin, second.jobId, io, { json: false, timeoutSeconds: 10, tty: true }), 0);
  assert.ok((drawn[0] ?? '').includes('\u001b[2K'), 'lines are cleared before they are drawn');
  assert.match(drawn[0] ?? '', / {2}\[#{20}\] 100% {2}Succeeded {2}Ask the management server/);
  assert.match(drawn.at(-1) ?? '', /Succeeded: Refresh the inventory/);
  // stopping the manager ends its pending long-poll at once
  await new Promise((r) => setTimeout(r, 300));
  const stopAt = Date.now();
  await loop.stop();
  assert.ok(Date.now() - stopAt < 3000, `stop took ${Date.now() - stopAt} ms`);
  // a poll whose client went away stops on the vault's side too: a command queued after it waits
  // for the next poll (else the abandoned one would take it, and it would wait for its redelivery)
  const abandon = new AbortController();
  const abandoned = site.client
    .get(`/v1/management-servers/${msId}/commands?waitSeconds=20`, abandon.signal)
    .catch(() => null);
  await new Promise((r) => setTimeout(r, 300));
  abandon.abort();
  await abandoned;
  await new Promise((r) => setTimeout(r, 100));
  const next = await admin.post<{ jobId: string }>(`/v1/management-servers/${msId}/refresh`, {});
  const polled = await site.client.get<{ commands: ProviderCommand[] }>(
    `/v1/management-servers/${msId}/commands?waitSeconds=5`,
  );
  assert.deepEqual(
    polled.commands.map((c) => [c.kind, c.deliveries]),
    [['inventory.sync', 1]],
    `the command of job ${next.jobId} went to the next poll, not to the one that was abandoned`,
  );
});

test('a management server that never answers: the task fails with a message that says so; the expired command is never delivered', async (t) => {
  const v = await startTestVault(server, t);
  const site = await v.register('site-a');
  const msId = site.identity.registration.managementServerId;
  const { jobId } = await v.admin.post<{ jobId: string }>(`/v1/management-servers/${msId}/refresh`, {
    timeoutSeconds: 2,
  });
  const job = await waitJob(v.admin, jobId);
  assert.equal(job.state, 'Failed');
  assert.equal(job.error?.code, 'SECONDSITE_ERR_TIMEOUT');
  assert.match(
    job.error?.message ?? '',
    /^management server site-a did not answer command inventory\.sync \([0-9a-f-]+\) within 2 s: is it running\?/,
  );
  assert.equal(job.tasks[0]?.error?.code, 'SECONDSITE_ERR_TIMEOUT');
  const late = await site.client.get<{ commands: ProviderCommand[] }>(
    `/v1/management-servers/${msId}/commands?waitSeconds=0`,
  );
  assert.deepEqual(late.commands, []);
  const rows = await sql<{ command_id: string }>(v.databaseUrl, 'SELECT command_id FROM provider_commands');
  const answer = await site.client.post<{ accepted: boolean; state: string }>(
    `/v1/management-servers/${msId}/commands/${rows[0]?.command_id}/result`,
    { ok: true, result: { inventoryVersion: 1 } },
  );
  assert.deepEqual(answer, { accepted: false, state: 'failed' });
});

test("another site's provider can neither read nor answer this server's commands; roles on jobs", async (t) => {
  const v = await startTestVault(server, t);
  const a = await v.register('site-a');
  const b = await v.register('site-b');
  const aId = a.identity.registration.managementServerId;
  const bId = b.identity.registration.managementServerId;
  const { jobId } = await v.admin.post<{ jobId: string }>(`/v1/management-servers/${aId}/refresh`, {});
  let commandId = '';
  for (let i = 0; i < 100 && !commandId; i++) {
    const rows = await sql<{ command_id: string }>(v.databaseUrl, 'SELECT command_id FROM provider_commands');
    commandId = rows[0]?.command_id ?? '';
    if (!commandId) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(commandId, 'the job recorded its command');
  const read = await b.client.raw('GET', `/v1/management-servers/${aId}/commands?waitSeconds=0`);
  assert.equal(read.status, 403, read.text);
  const answer = await b.client.raw('POST', `/v1/management-servers/${aId}/commands/${commandId}/result`, {
    ok: true,
    result: { inventoryVersion: 1 },
  });
  assert.equal(answer.status, 403, answer.text);
  const viaOwn = await b.client.raw('POST', `/v1/management-servers/${bId}/commands/${commandId}/result`, {
    ok: true,
    result: { inventoryVersion: 1 },
  });
  assert.equal(viaOwn.status, 404, viaOwn.text);
  const own = await b.client.get<{ commands: ProviderCommand[] }>(`/v1/management-servers/${bId}/commands`);
  assert.deepEqual(own.commands, [], "site-b's poll gets none of site-a's commands");
  // site-a's provider gets it, untouched by site-b
  const mine = await a.client.get<{ commands: ProviderCommand[] }>(`/v1/management-servers/${aId}/commands`);
  assert.deepEqual(
    mine.commands.map((c) => [c.commandId, c.kind, c.deliveries]),
    [[commandId, 'inventory.sync', 1]],
  );
  // roles: a Reader reads jobs but cannot start or cancel one; an Operator cancels
  const reader = await v.userClient('Reader');
  assert.equal((await reader.get<JobDetail>(`/v1/jobs/${jobId}`)).kind, 'inventory-refresh');
  assert.equal((await reader.raw('POST', `/v1/management-servers/${aId}/refresh`, {})).status, 403);
  assert.equal((await reader.raw('POST', `/v1/jobs/${jobId}/cancel`)).status, 403);
  const operator = await v.userClient('Operator');
  await operator.post(`/v1/jobs/${jobId}/cancel`);
  const job = await waitJob(v.admin, jobId);
  assert.equal(job.state, 'Cancelled');
  assert.ok(job.events.some((e) => e.kind === 'job.cancelled' && /operator-/.test(e.message)));
  // a job cancelled before its command was delivered: the command is never delivered
  const forB = await v.admin.post<{ jobId: string }>(`/v1/management-servers/${bId}/refresh`, {});
  for (let i = 0; i < 100; i++) {
    const rows = await sql(v.databaseUrl, 'SELECT 1 FROM provider_commands WHERE job_id = $1', [forB.jobId]);
    if (rows.length > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await operator.post(`/v1/jobs/${forB.jobId}/cancel`);
  assert.equal((await waitJob(v.admin, forB.jobId)).state, 'Cancelled');
  const afterCancel = await b.client.get<{ commands: ProviderCommand[] }>(
    `/v1/management-servers/${bId}/commands`,
  );
  assert.deepEqual(afterCancel.commands, []);
  assert.equal((await v.admin.raw('GET', '/v1/jobs/not-a-job')).status, 404);
  assert.equal((await v.admin.raw('GET', '/v1/jobs?state=Broken')).status, 400);
});

test('a manager stopped while it runs a command does not run it again after its restart: COMMAND_INTERRUPTED', async (t) => {
  const v = await startTestVault(server, t);
  const site = await v.register('site-a');
  const msId = site.identity.registration.managementServerId;
  const url = await server.freshDatabase();
  const db = await openDatabase({ databaseUrl: url, dataDir: v.dataDir, component: 'manager' });
  const loops: CommandLoop[] = [];
  t.after(async () => {
    for (const l of loops) await l.stop();
    await db.close();
    await server.dropDatabase(url);
  });
  let runs = 0;
  let running: () => void = () => {};
  const started = new Promise<void>((r) => (running = r));
  const makeLoop = (): CommandLoop => {
    const loop = new CommandLoop(site.client, msId, db, silentLogger, { waitSeconds: 5, maxBackoffMs: 500 });
    loop.register('inventory.sync', async (_body, ctx) => {
      runs++;
      running();
      await new Promise((_, reject) =>
        ctx.signal.addEventListener('abort', () => reject(new Error('stopped'))),
      );
    });
    loops.push(loop);
    loop.start();
    return loop;
  };
  const first = makeLoop();
  const { jobId } = await v.admin.post<{ jobId: string }>(`/v1/management-servers/${msId}/refresh`, {});
  await started;
  await first.stop(); // the management server stops mid-command
  // its answer never came: the vault delivers the command again (made due now instead of in 60 s)
  await sql(v.databaseUrl, "UPDATE provider_commands SET delivered_at = now() - interval '2 minutes'");
  makeLoop();
  const job = await waitJob(v.admin, jobId);
  assert.equal(job.state, 'Failed');
  assert.equal(job.error?.code, 'SECONDSITE_ERR_COMMAND_INTERRUPTED');
  assert.match(job.error?.message ?? '', /stopped while it ran command inventory\.sync .* not run again/);
  assert.equal(runs, 1, 'the command ran once');
  const rows = await sql<{ deliveries: number }>(v.databaseUrl, 'SELECT deliveries FROM provider_commands');
  assert.deepEqual(rows, [{ deliveries: 2 }]);
});

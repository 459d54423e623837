/**
 * Job history retention (docs/design/vault.md section 7.6) against a real PostgreSQL: jobs run by
 * the real runner, then aged on the database's clock (their end times moved back), and pruned. What
 * ended before the window goes with its tasks, events, queue row and commands; what is recent, still
 * running or queued stays; a backlog larger than one batch goes entirely; a second pass finds nothing.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { z } from 'zod/v4';
import { isSecondsiteError } from '../../src/domain/errors.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { Database } from '../../src/persistence/database.js';
import { JobQueue } from '../../src/persistence/jobs/job-queue.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { freshVaultDatabase } from './vault-fixtures.js';
import { CommandChannel } from '../../src/vault/commands/provider-commands.js';
import {
  checkJobHistoryDays,
  JOB_HISTORY_BATCH_ROWS,
  pruneJobHistory,
} from '../../src/vault/jobs/job-history.js';
import { defineJobKind, step, type AnyJobKind } from '../../src/vault/jobs/job-kind.js';
import { JobRunner } from '../../src/vault/jobs/job-runner.js';
import { JobsService } from '../../src/vault/jobs/jobs.service.js';

const server = useTestPostgres();

function vaultDb(t: TestContext): Promise<Database> {
  return freshVaultDatabase(server, t);
}

/** Moves a job's times back by `days` on the database's clock, as if it had ended that long ago. */
async function age(db: Database, jobId: string, days: number): Promise<void> {
  const back = `make_interval(days => ${days})`;
  await db.query(
    `UPDATE vault_jobs SET created_at = created_at - ${back}, started_at = started_at - ${back},
       ended_at = ended_at - ${back}, updated_at = updated_at - ${back} WHERE job_id = $1`,
    [jobId],
  );
  await db.query(
    `UPDATE jobs SET created_at = created_at - ${back}, updated_at = updated_at - ${back},
       finished_at = finished_at - ${back} WHERE id = $1`,
    [jobId],
  );
  await db.query(
    `UPDATE provider_commands SET created_at = created_at - ${back}, completed_at = completed_at - ${back}
       WHERE job_id = $1`,
    [jobId],
  );
}

async function count(db: Database, sql: string, params: unknown[] = []): Promise<number> {
  return Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${sql}`, params)).rows[0]?.n);
}

/** A finished provider command of `jobId` (as the command channel leaves one). */
async function doneCommand(db: Database, jobId: string, stepName: string): Promise<void> {
  await db.query(
    `INSERT INTO provider_commands (management_server_id, job_id, step, kind, state, timeout_seconds, completed_at)
     VALUES ('ms-1', $1, $2, 'inventory.sync', 'done', 60, now())`,
    [jobId, stepName],
  );
}

test('jobs ended before the window go with their tasks, events, queue rows and commands; the rest stays', async (t) => {
  const db = await vaultDb(t);
  await db.query(`INSERT INTO management_servers (management_server_id, name) VALUES ('ms-1', 'vmm-1')`);
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  const kind = defineJobKind<{ hold: boolean }>({
    kind: 'test-history',
    cancellable: false,
    params: z.object({ hold: z.boolean() }),
    title: (p, name) => `${p.hold ? 'hold' : 'run'} ${name}`,
    steps: [
      step('only', 'Only', async (ctx) => {
        await ctx.progress(50, 'working');
        if (ctx.params.hold) await held;
        return { ok: true };
      }),
    ],
  });
  const kinds = new Map<string, AnyJobKind>([[kind.kind, kind]]);
  const jobs = new JobsService(db, kinds);
  const commands = new CommandChannel(db);
  const runner = new JobRunner({ db, kinds, commands, log: silentLogger, leaseMs: 2000 });
  t.after(async () => {
    release();
    await runner.stop();
    await commands.close();
  });
  const start = async (name: string, hold = false): Promise<string> =>
    (
      await jobs.start({
        kind: kind.kind,
        params: { hold },
        target: { type: 't', id: name, name },
        startedBy: 'test',
      })
    ).jobId;
  const old = await start('old');
  const recent = await start('recent');
  const running = await start('running', true);
  runner.start();
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const [a, b, c] = await Promise.all([jobs.get(old), jobs.get(recent), jobs.get(running)]);
    if (a.state === 'Succeeded' && b.state === 'Succeeded' && c.state === 'InProgress') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal((await jobs.get(old)).state, 'Succeeded');
  assert.equal((await jobs.get(running)).state, 'InProgress');
  for (const id of [old, recent, running]) await doneCommand(db, id, 'only');
  // a job the queue gave up on while its view still says InProgress (no end recorded)
  // (held: if the runner claims it before the UPDATE, its step never finishes to overwrite the view)
  const abandoned = await start('abandoned', true);
  await db.query(
    `UPDATE jobs SET state = 'failed', finished_at = now(), last_error = '{"message":"runs exhausted"}',
       lease_owner = NULL, lease_expires_at = NULL
       WHERE id = $1`,
    [abandoned],
  );
  await db.query(`UPDATE vault_jobs SET state = 'InProgress', started_at = now() WHERE job_id = $1`, [
    abandoned,
  ]);
  for (const id of [old, running, abandoned]) await age(db, id, 31);
  await age(db, recent, 29);
  // alert webhook deliveries: one delivered long ago, one still queued
  const deliveries = new JobQueue(db, 'alert-webhooks');
  const { job: delivered } = await deliveries.enqueue({
    kind: 'deliver',
    payload: { alertId: '1', event: 'raised' },
  });
  const { job: queued } = await deliveries.enqueue({
    kind: 'deliver',
    payload: { alertId: '2', event: 'raised' },
  });
  await db.query(
    `UPDATE jobs SET state = 'succeeded', finished_at = now() - make_interval(days => 40) WHERE id = $1`,
    [delivered.id],
  );
  const tasksOf = (id: string): Promise<number> => count(db, 'job_tasks WHERE job_id = $1', [id]);
  assert.equal(await tasksOf(old), 1);
  assert.ok((await count(db, 'job_events WHERE job_id = $1', [old])) > 0);

  const pruned = await pruneJobHistory(db, 30);
  assert.deepEqual(pruned, { jobs: 2, providerCommands: 1, queueRows: 1 });
  for (const gone of [old, abandoned]) {
    await assert.rejects(jobs.get(gone), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_NOT_FOUND'));
    assert.equal(await count(db, 'jobs WHERE id = $1', [gone]), 0);
    assert.equal(await tasksOf(gone), 0);
    assert.equal(await count(db, 'job_events WHERE job_id = $1', [gone]), 0);
  }
  assert.equal(await count(db, 'provider_commands WHERE job_id IS NULL'), 0, 'the old job took its command');
  // kept: the job ended 29 days ago and the one still running (its command too, for a re-run)
  assert.equal((await jobs.get(recent)).state, 'Succeeded');
  assert.equal((await jobs.get(running)).state, 'InProgress');
  assert.equal(await count(db, 'provider_commands WHERE job_id = $1', [running]), 1);
  assert.equal(await count(db, 'jobs WHERE id = $1', [queued.id]), 1, 'a queued delivery stays');
  assert.equal(await count(db, 'jobs WHERE id = $1', [delivered.id]), 0);

  assert.deepEqual(await pruneJobHistory(db, 30), { jobs: 0, providerCommands: 0, queueRows: 0 });
  // with a shorter window the recent job goes too; the running one never does
  assert.deepEqual(await pruneJobHistory(db, 28), { jobs: 1, providerCommands: 1, queueRows: 0 });
  assert.equal((await jobs.get(running)).state, 'InProgress');
  release();
  const finished = Date.now() + 20_000;
  while ((await jobs.get(running)).state !== 'Succeeded' && Date.now() < finished) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal((await jobs.get(running)).state, 'Succeeded', 'the running job finished, untouched');
});

test('a backlog larger than one batch is pruned entirely in one pass', async (t) => {
  const db = await vaultDb(t);
  const rows = JOB_HISTORY_BATCH_ROWS * 2 + 17;
  await db.query(
    `INSERT INTO jobs (queue, kind, state, finished_at)
     SELECT 'alert-webhooks', 'deliver', 'succeeded', now() - make_interval(days => 60)
     FROM generate_series(1, $1)`,
    [rows],
  );
  assert.deepEqual(await pruneJobHistory(db, 30), { jobs: 0, providerCommands: 0, queueRows: rows });
  assert.equal(await count(db, 'jobs'), 0);
});

test('a job history outside 1..3650 days is refused with the rule', () => {
  for (const days of [0, -1, 1.5, 3651, Number.NaN]) {
    assert.throws(
      () => checkJobHistoryDays(days),
      (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT') && /from 1 to 3650/.test(e.message),
    );
  }
  for (const days of [1, 30, 3650]) checkJobHistoryDays(days);
});

/**
 * The vault's job framework (src/vault/jobs) against a real PostgreSQL: each step's outcome is
 * persisted before the next starts, and a run cut short resumes at the first unfinished step with
 * the earlier outcomes read back (the finished steps do not run again); a failing step fails its task
 * and the job with its code and message; a cancel stops a job while it waits.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { z } from 'zod/v4';
import { SecondsiteError } from '../../src/domain/errors.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { Database } from '../../src/persistence/database.js';
import type { JobDetail, JobState } from '../../src/protocol/vault-api/jobs.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { freshVaultDatabase } from './vault-fixtures.js';
import { CommandChannel } from '../../src/vault/commands/provider-commands.js';
import { defineJobKind, step, type AnyJobKind } from '../../src/vault/jobs/job-kind.js';
import { JobRunner } from '../../src/vault/jobs/job-runner.js';
import { JobsService } from '../../src/vault/jobs/jobs.service.js';

const server = useTestPostgres();

function vaultDb(t: TestContext): Promise<Database> {
  return freshVaultDatabase(server, t);
}

function runnerOn(db: Database, kinds: Map<string, AnyJobKind>, t: TestContext): JobRunner {
  const commands = new CommandChannel(db);
  const runner = new JobRunner({ db, kinds, commands, log: silentLogger, leaseMs: 2000 });
  t.after(async () => {
    await runner.stop();
    await commands.close();
  });
  return runner;
}

async function waitForState(jobs: JobsService, jobId: string, want: JobState[]): Promise<JobDetail> {
  const deadline = Date.now() + 20_000;
  let job = await jobs.get(jobId);
  while (!want.includes(job.state) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    job = await jobs.get(jobId);
  }
  assert.ok(want.includes(job.state), `job ended ${job.state}: ${JSON.stringify(job)}`);
  return job;
}

const target = { type: 'test', id: 't-1', name: 'thing' };

test('steps are persisted in order; a run cut short resumes at the unfinished step with the earlier outputs', async (t) => {
  const db = await vaultDb(t);
  const ran: string[] = [];
  let blockSecond = true;
  let secondStarted: () => void = () => {};
  const secondRunning = new Promise<void>((r) => (secondStarted = r));
  const kind = defineJobKind<{ base: number }>({
    kind: 'test-steps',
    cancellable: false,
    params: z.object({ base: z.number() }),
    title: (p, name) => `add to ${p.base} on ${name}`,
    steps: [
      step('first', 'First', (ctx) => {
        ran.push('first');
        return Promise.resolve({ value: ctx.params.base + 1 });
      }),
      step('second', 'Second', async (ctx) => {
        ran.push('second');
        await ctx.progress(40, 'half way');
        if (blockSecond) {
          secondStarted();
          // until the run is cut short (the runner stops, as a process would)
          await new Promise((_, reject) =>
            ctx.signal.addEventListener('abort', () => reject(new Error('aborted'))),
          );
        }
        return { value: ctx.output<{ value: number }>('first').value * 10 };
      }),
      step('third', 'Third', (ctx) => {
        ran.push('third');
        return Promise.resolve({ value: ctx.output<{ value: number }>('second').value + 1 });
      }),
    ],
  });
  const kinds = new Map<string, AnyJobKind>([[kind.kind, kind]]);
  const jobs = new JobsService(db, kinds);
  const { jobId } = await jobs.start({ kind: 'test-steps', params: { base: 4 }, target, startedBy: 'test' });
  assert.equal((await jobs.get(jobId)).state, 'NotStarted');

  const first = runnerOn(db, kinds, t);
  first.start();
  await secondRunning;
  const during = await jobs.get(jobId);
  assert.equal(during.state, 'InProgress');
  assert.deepEqual(
    during.tasks.map((x) => [x.name, x.state, x.progressPercent, x.message]),
    [
      ['first', 'Succeeded', 100, ''],
      ['second', 'InProgress', 40, 'half way'],
      ['third', 'NotStarted', 0, ''],
    ],
  );
  assert.equal(during.progressPercent, 47); // (100 + 40 + 0) / 3
  await first.stop(); // the run is cut short mid-step
  blockSecond = false;
  const second = runnerOn(db, kinds, t);
  second.start();
  const done = await waitForState(jobs, jobId, ['Succeeded', 'Failed']);
  assert.equal(done.state, 'Succeeded', JSON.stringify(done));
  assert.deepEqual(done.result, { value: 51 });
  assert.deepEqual(ran, ['first', 'second', 'second', 'third'], 'the finished step did not run again');
  assert.deepEqual(
    done.tasks.map((x) => [x.name, x.state, x.runs]),
    [
      ['first', 'Succeeded', 1],
      ['second', 'Succeeded', 2],
      ['third', 'Succeeded', 1],
    ],
  );
  const kindsOfEvents = done.events.map((e) => `${e.task ?? '-'}:${e.kind}`);
  assert.ok(kindsOfEvents.includes('second:task.resumed'), kindsOfEvents.join(' '));
  assert.ok(kindsOfEvents.includes('-:job.resumed'), kindsOfEvents.join(' '));
  assert.equal(kindsOfEvents.filter((k) => k === '-:job.succeeded').length, 1);
  assert.equal(done.title, 'add to 4 on thing');
  assert.deepEqual(
    (await jobs.list({ state: 'Succeeded' })).map((j) => j.jobId),
    [jobId],
  );
  assert.deepEqual(await jobs.list({ state: 'Failed' }), []);
});

test('a failing step fails its task and the job with its code and message; later steps never run', async (t) => {
  const db = await vaultDb(t);
  let thirdRan = false;
  const kind = defineJobKind<Record<string, never>>({
    kind: 'test-fail',
    cancellable: false,
    params: z.object({}),
    title: () => 'fails',
    steps: [
      step('ok', 'Fine', () => Promise.resolve(1)),
      step('bad', 'Refused', () => {
        throw new SecondsiteError('SECONDSITE_ERR_INVALID_STATE', 'the replica host is full: free 3 GiB');
      }),
      step('never', 'Never', () => {
        thirdRan = true;
        return Promise.resolve();
      }),
    ],
  });
  const kinds = new Map<string, AnyJobKind>([[kind.kind, kind]]);
  const jobs = new JobsService(db, kinds);
  runnerOn(db, kinds, t).start();
  const { jobId } = await jobs.start({ kind: 'test-fail', params: {}, target, startedBy: 'test' });
  const done = await waitForState(jobs, jobId, ['Failed', 'Succeeded']);
  assert.equal(done.state, 'Failed');
  assert.deepEqual(done.error, {
    code: 'SECONDSITE_ERR_INVALID_STATE',
    message: 'the replica host is full: free 3 GiB',
  });
  assert.deepEqual(
    done.tasks.map((x) => [x.name, x.state]),
    [
      ['ok', 'Succeeded'],
      ['bad', 'Failed'],
      ['never', 'NotStarted'],
    ],
  );
  assert.equal(done.tasks[1]?.error?.code, 'SECONDSITE_ERR_INVALID_STATE');
  assert.equal(thirdRan, false);
  await assert.rejects(jobs.cancel(jobId, 'test'), { code: 'SECONDSITE_ERR_INVALID_STATE' });
});

test('cancel: a waiting job stops and its unfinished tasks are Cancelled; an exclusive key starts one job', async (t) => {
  const db = await vaultDb(t);
  const kind = defineJobKind<Record<string, never>>({
    kind: 'test-wait',
    cancellable: true,
    params: z.object({}),
    title: () => 'waits',
    steps: [
      step('wait', 'Wait forever', (ctx) =>
        ctx.waitFor(() => Promise.resolve(undefined), {
          timeoutSeconds: 600,
          timeoutMessage: 'never',
          pollMs: 100,
        }),
      ),
      step('after', 'After', () => Promise.resolve()),
    ],
  });
  const kinds = new Map<string, AnyJobKind>([[kind.kind, kind]]);
  const jobs = new JobsService(db, kinds);
  const start = (): Promise<{ jobId: string; created: boolean }> =>
    jobs.start({ kind: 'test-wait', params: {}, target, startedBy: 'test', exclusiveKey: 'wait:t-1' });
  const [a, b] = await Promise.all([start(), start()]);
  assert.equal(a.jobId, b.jobId, 'one unfinished job per exclusive key');
  assert.deepEqual([a.created, b.created].sort(), [false, true]);
  runnerOn(db, kinds, t).start();
  await waitForState(jobs, a.jobId, ['InProgress']);
  await jobs.cancel(a.jobId, 'user ann (Operator)');
  const done = await waitForState(jobs, a.jobId, ['Cancelled']);
  assert.deepEqual(
    done.tasks.map((x) => [x.name, x.state]),
    [
      ['wait', 'Cancelled'],
      ['after', 'Cancelled'],
    ],
  );
  assert.ok(done.events.some((e) => e.kind === 'job.cancelled' && /ann/.test(e.message)));
  const next = await start();
  assert.equal(next.created, true, 'a new job once the last one ended');
  // started or not, a cancelled job ends Cancelled
  const other = await jobs.start({ kind: 'test-wait', params: {}, target, startedBy: 'test' });
  await jobs.cancel(other.jobId, 'test');
  await waitForState(jobs, other.jobId, ['Cancelled']);
});

test('a step that fails because the database connection did is run again, not failed', async (t) => {
  const db = await vaultDb(t);
  let runs = 0;
  const kind = defineJobKind<Record<string, never>>({
    kind: 'test-flaky',
    cancellable: false,
    params: z.object({}),
    title: () => 'flaky',
    steps: [
      step('connect', 'Reads the database', () => {
        runs++;
        // what pg throws when PostgreSQL restarts under a query
        if (runs === 1) throw new Error('Connection terminated unexpectedly');
        return Promise.resolve({ runs });
      }),
    ],
  });
  const kinds = new Map<string, AnyJobKind>([[kind.kind, kind]]);
  const jobs = new JobsService(db, kinds);
  runnerOn(db, kinds, t).start();
  const { jobId } = await jobs.start({ kind: 'test-flaky', params: {}, target, startedBy: 'test' });
  const done = await waitForState(jobs, jobId, ['Succeeded', 'Failed']);
  assert.equal(done.state, 'Succeeded', JSON.stringify(done));
  assert.deepEqual(done.result, { runs: 2 });
  assert.equal(done.tasks[0]?.runs, 2);
});

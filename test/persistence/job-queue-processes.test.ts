// Two real worker processes on one database (test/persistence/fixtures/queue-worker.ts): every job is
// done exactly once between them, and a job whose owner is killed with SIGKILL mid-run is taken over
// by the other process only after its lease expires, then completed once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase, type Database } from '../../src/persistence/database.js';
import { JobQueue } from '../../src/persistence/jobs/job-queue.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import {
  registerChildCleanup,
  spawnTsScript,
  type ChildHandle,
} from '../../src/testing/process/child-process.js';

registerChildCleanup();
const server = useTestPostgres();
const WORKER = 'test/persistence/fixtures/queue-worker.ts';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function setUp(
  t: { after: (fn: () => Promise<void>) => void },
  leaseMs: number,
): Promise<{ db: Database; queue: JobQueue; workers: ChildHandle[] }> {
  const url = await server.freshDatabase(t);
  const db = await openDatabase({ databaseUrl: url, dataDir: '/nonexistent', component: 'vault' });
  t.after(() => db.close());
  await db.query(`CREATE TABLE job_starts (job_id uuid NOT NULL, owner text NOT NULL, attempt int NOT NULL,
                                           at timestamptz NOT NULL DEFAULT clock_timestamp())`);
  await db.query(`CREATE TABLE job_runs (job_id uuid NOT NULL, owner text NOT NULL, attempt int NOT NULL)`);
  const workers = ['worker-a', 'worker-b'].map((owner) =>
    spawnTsScript(WORKER, [owner, String(leaseMs)], { env: { DATABASE_URL: url } }),
  );
  t.after(async () => {
    await Promise.all(workers.map((w) => w.kill9()));
  });
  await Promise.all(workers.map((w) => w.waitForReady(30_000)));
  return { db, queue: new JobQueue(db, 'test'), workers };
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(50);
  }
}

test('two worker processes: every one of 300 jobs is run and recorded exactly once', async (t) => {
  const { db, queue } = await setUp(t, 5000);
  const jobs = 300;
  await db.transaction(async (tx) => {
    for (let i = 0; i < jobs; i++) await queue.enqueue({ kind: 'record', payload: i }, tx);
  });
  const count = async (sql: string): Promise<number> =>
    Number((await db.query<{ n: string }>(sql)).rows[0]?.n ?? 0);
  await waitFor(
    'all jobs to succeed',
    async () => (await count("SELECT count(*) AS n FROM jobs WHERE state = 'succeeded'")) === jobs,
    60_000,
  );
  assert.equal(await count('SELECT count(*) AS n FROM job_starts'), jobs, 'no job was started twice');
  assert.equal(await count('SELECT count(DISTINCT job_id) AS n FROM job_runs'), jobs);
  assert.equal(await count('SELECT count(*) AS n FROM job_runs'), jobs, 'no job was recorded twice');
  assert.equal(await count('SELECT count(*) AS n FROM jobs WHERE attempts <> 1'), 0);
  const perOwner = (
    await db.query<{ owner: string; n: string }>(
      'SELECT owner, count(*) AS n FROM job_runs GROUP BY owner ORDER BY owner',
    )
  ).rows;
  t.diagnostic(`jobs per worker: ${perOwner.map((r) => `${r.owner}=${r.n}`).join(' ')}`);
  assert.deepEqual(
    perOwner.map((r) => r.owner),
    ['worker-a', 'worker-b'],
    'both processes took part',
  );
});

test('kill -9 of the worker running a job: the other takes it over after the lease and completes it once', async (t) => {
  const leaseMs = 1500;
  const { db, queue, workers } = await setUp(t, leaseMs);
  const { job } = await queue.enqueue({ kind: 'hang-first', payload: null });
  const started = await Promise.race(
    workers.map((w) =>
      w
        .waitForLine((_l, json) => (json as { started?: string } | undefined)?.started === job.id, 30_000)
        .then(() => w),
    ),
  );
  const survivor = workers.find((w) => w !== started) as ChildHandle;

  // While its owner lives and heartbeats, nobody else takes the job, even after several lease lengths.
  await sleep(leaseMs * 2.5);
  const held = await queue.get(job.id);
  assert.equal(held?.state, 'running');
  assert.equal(held?.attempt, 1);
  assert.ok(
    held && held.leaseExpiresAt && held.leaseExpiresAt.getTime() > held.createdAt.getTime() + leaseMs,
    'heartbeats extended the lease',
  );

  const killedAt = await db.query<{ now: Date }>('SELECT now()');
  await started.kill9();
  await waitFor('the job to succeed', async () => (await queue.get(job.id))?.state === 'succeeded', 30_000);
  assert.ok(survivor.running);

  const done = await queue.get(job.id);
  assert.equal(done?.attempt, 2);
  const survivorOwner = started.name.includes('worker-a') ? 'worker-b' : 'worker-a';
  assert.deepEqual(done?.result, { by: survivorOwner });
  assert.equal((done?.lastError as { code?: string }).code, 'SECONDSITE_ERR_LEASE_LOST');
  const runs = (await db.query<{ owner: string; attempt: number }>('SELECT owner, attempt FROM job_runs'))
    .rows;
  assert.deepEqual(runs, [{ owner: survivorOwner, attempt: 2 }], 'completed once, by the survivor');
  const second = (
    await db.query<{ at: Date }>('SELECT at FROM job_starts WHERE job_id = $1 AND attempt = 2', [job.id])
  ).rows[0];
  const expiresNoEarlierThan = held.leaseExpiresAt.getTime();
  assert.ok(
    second && second.at.getTime() >= expiresNoEarlierThan,
    `taken over at ${second?.at.toISOString()}, before the lease of the killed owner expired (${held.leaseExpiresAt.toISOString()})`,
  );
  assert.ok(second.at.getTime() >= (killedAt.rows[0] as { now: Date }).now.getTime());
});

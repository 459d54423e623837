// The work queue and the lease store in one process against a real PostgreSQL: idempotent enqueue,
// claim order and exclusivity, fencing by attempt (LEASE_LOST), retry and permanent failure, reclaim
// of expired leases, completion inside the caller's transaction, the worker loop, and named leases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase, type Database } from '../../src/persistence/database.js';
import { JobQueue, type Job } from '../../src/persistence/jobs/job-queue.js';
import { JobWorker, type JobWorkerEvent } from '../../src/persistence/jobs/job-worker.js';
import { acquireLease, releaseLease, renewLease } from '../../src/persistence/leases/lease-store.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';

const server = useTestPostgres();

async function freshVault(t: { after: (fn: () => Promise<void>) => void }): Promise<Database> {
  const url = await server.freshDatabase(t);
  const db = await openDatabase({ databaseUrl: url, dataDir: '/nonexistent', component: 'vault' });
  t.after(() => db.close());
  return db;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('enqueue with an idempotency key creates the job once; another payload under the key is refused', async (t) => {
  const db = await freshVault(t);
  const q = new JobQueue(db, 'orchestration');
  const first = await q.enqueue({ kind: 'enable', payload: { vm: 'a' }, idempotencyKey: 'req-1' });
  const again = await q.enqueue({ kind: 'enable', payload: { vm: 'a' }, idempotencyKey: 'req-1' });
  assert.equal(first.created, true);
  assert.equal(again.created, false);
  assert.equal(again.job.id, first.job.id);
  await assert.rejects(q.enqueue({ kind: 'enable', payload: { vm: 'b' }, idempotencyKey: 'req-1' }), {
    code: 'SECONDSITE_ERR_ALREADY_EXISTS',
  });
  // The key is per queue, and jobs without a key are all distinct.
  const other = await new JobQueue(db, 'other').enqueue({
    kind: 'enable',
    payload: { vm: 'a' },
    idempotencyKey: 'req-1',
  });
  assert.equal(other.created, true);
  const a = await q.enqueue({ kind: 'x', payload: 1 });
  const b = await q.enqueue({ kind: 'x', payload: 1 });
  assert.notEqual(a.job.id, b.job.id);
  assert.equal((await db.query("SELECT * FROM jobs WHERE queue = 'orchestration'")).rowCount, 3);
});

test('claims are exclusive and oldest first; delayed jobs wait; kinds filter', async (t) => {
  const db = await freshVault(t);
  const q = new JobQueue(db, 'q');
  const ids: string[] = [];
  for (let i = 0; i < 6; i++)
    ids.push((await q.enqueue({ kind: i % 2 ? 'odd' : 'even', payload: i })).job.id);
  await q.enqueue({ kind: 'even', payload: 'later', delayMs: 60_000 });
  // Ten claimers at once, one job each: six get a distinct job, four get nothing.
  const claims = await Promise.all(
    Array.from({ length: 10 }, (_, i) => q.claim({ owner: `w${i}`, leaseMs: 10_000 })),
  );
  const got = claims.flat();
  assert.equal(got.length, 6);
  assert.deepEqual(new Set(got.map((j) => j.id)), new Set(ids));
  assert.ok(got.every((j) => j.state === 'running' && j.attempt === 1 && j.leaseExpiresAt !== null));
  assert.deepEqual(await q.claim({ owner: 'late', leaseMs: 10_000 }), [], 'the delayed job is not ready');

  const q2 = new JobQueue(db, 'q2');
  for (let i = 0; i < 4; i++) await q2.enqueue({ kind: i % 2 ? 'odd' : 'even', payload: i });
  const odd = await q2.claim({ owner: 'w', leaseMs: 10_000, limit: 10, kinds: ['odd'] });
  assert.deepEqual(
    odd.map((j) => j.payload),
    [1, 3],
  );
});

test('fencing: after a lease expires and the job is reclaimed, the old owner cannot heartbeat, complete or fail', async (t) => {
  const db = await freshVault(t);
  const q = new JobQueue(db, 'q');
  const { job } = await q.enqueue({ kind: 'k', payload: {} });
  const [a] = (await q.claim({ owner: 'A', leaseMs: 200 })) as [Job];
  await q.heartbeat(a, 200); // still ours
  assert.deepEqual(await q.claim({ owner: 'B', leaseMs: 5000 }), [], 'a live lease is not reclaimed');
  await sleep(300);
  const [b] = (await q.claim({ owner: 'B', leaseMs: 5000 })) as [Job];
  assert.equal(b.id, job.id);
  assert.equal(b.attempt, 2);
  assert.equal(b.leaseOwner, 'B');
  assert.equal((b.lastError as { code: string }).code, 'SECONDSITE_ERR_LEASE_LOST');
  for (const stale of [
    () => q.heartbeat(a, 1000),
    () => q.complete(a, { by: 'A' }),
    () => q.fail(a, { message: 'A failed' }),
  ]) {
    await assert.rejects(stale(), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'SECONDSITE_ERR_LEASE_LOST');
      assert.match(e.message, /attempt 1 of A no longer holds it \(now running, attempt 2, owner B\)/);
      return true;
    });
  }
  const done = await q.complete(b, { by: 'B' });
  assert.equal(done.state, 'succeeded');
  assert.deepEqual(done.result, { by: 'B' });
  await assert.rejects(
    q.complete(b, {}),
    { code: 'SECONDSITE_ERR_LEASE_LOST' },
    'completing twice is refused',
  );
});

test('fail retries with a delay until attempts run out; permanent failures stop at once; expired last attempt fails', async (t) => {
  const db = await freshVault(t);
  const q = new JobQueue(db, 'q');
  const { job } = await q.enqueue({ kind: 'k', payload: {}, maxAttempts: 2 });
  const [r1] = (await q.claim({ owner: 'w', leaseMs: 5000 })) as [Job];
  const f1 = await q.fail(
    r1,
    { message: 'try again', code: 'SECONDSITE_ERR_TIMEOUT' },
    { retryDelayMs: 150 },
  );
  assert.equal(f1.state, 'queued');
  assert.deepEqual(f1.lastError, { message: 'try again', code: 'SECONDSITE_ERR_TIMEOUT' });
  assert.deepEqual(await q.claim({ owner: 'w', leaseMs: 5000 }), [], 'not before the retry delay');
  await sleep(200);
  const [r2] = (await q.claim({ owner: 'w', leaseMs: 5000 })) as [Job];
  assert.equal(r2.attempt, 2);
  const f2 = await q.fail(r2, { message: 'again' }, { retryDelayMs: 0 });
  assert.equal(f2.state, 'failed', 'out of attempts');
  assert.ok(f2.finishedAt);

  const { job: p } = await q.enqueue({ kind: 'k', payload: 'permanent' });
  const [rp] = (await q.claim({ owner: 'w', leaseMs: 5000 })) as [Job];
  assert.equal(rp.id, p.id);
  assert.equal((await q.fail(rp, { message: 'bad input' }, { permanent: true })).state, 'failed');

  const { job: e } = await q.enqueue({ kind: 'k', payload: 'expires', maxAttempts: 1 });
  await q.claim({ owner: 'dead', leaseMs: 100 });
  await sleep(200);
  assert.equal(await q.reclaimExpired(), 1);
  const expired = await q.get(e.id);
  assert.equal(expired?.state, 'failed');
  assert.equal((expired?.lastError as { code: string }).code, 'SECONDSITE_ERR_LEASE_LOST');
  assert.equal((await q.get(job.id))?.attempt, 2);
});

test('completion inside the caller transaction: rolled back together with its writes', async (t) => {
  const db = await freshVault(t);
  await db.query('CREATE TABLE effects (job_id uuid PRIMARY KEY)');
  const q = new JobQueue(db, 'q');
  const { job } = await q.enqueue({ kind: 'k', payload: {} });
  const [run] = (await q.claim({ owner: 'w', leaseMs: 5000 })) as [Job];
  await assert.rejects(
    db.transaction(async (tx) => {
      await tx.query('INSERT INTO effects VALUES ($1)', [job.id]);
      await q.complete(run, 'ok', tx);
      throw new Error('boom after complete');
    }),
    /boom after complete/,
  );
  assert.equal((await q.get(job.id))?.state, 'running');
  assert.equal((await db.query('SELECT * FROM effects')).rowCount, 0);
  await db.transaction(async (tx) => {
    await tx.query('INSERT INTO effects VALUES ($1)', [job.id]);
    await q.complete(run, 'ok', tx);
  });
  assert.equal((await q.get(job.id))?.state, 'succeeded');
  assert.equal((await db.query('SELECT * FROM effects')).rowCount, 1);
});

test('transaction() retries serialization failures and gives up on other errors', async (t) => {
  const db = await freshVault(t);
  await db.query('CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)');
  await db.query('INSERT INTO counter VALUES (1, 0)');
  let runs = 0;
  // Twenty serializable read-modify-write transactions at once: conflicts happen and are retried.
  await Promise.all(
    Array.from({ length: 20 }, () =>
      db.transaction(
        async (tx) => {
          runs++;
          const { rows } = await tx.query<{ n: number }>('SELECT n FROM counter WHERE id = 1');
          await sleep(5);
          await tx.query('UPDATE counter SET n = $1 WHERE id = 1', [(rows[0]?.n ?? 0) + 1]);
        },
        { isolation: 'serializable', maxAttempts: 50 },
      ),
    ),
  );
  assert.deepEqual((await db.query('SELECT n FROM counter')).rows, [{ n: 20 }]);
  assert.ok(runs > 20, `expected retried runs, got ${runs}`);
  let plain = 0;
  await assert.rejects(
    db.transaction(() => {
      plain++;
      return Promise.reject(new Error('not retryable'));
    }),
    /not retryable/,
  );
  assert.equal(plain, 1);
});

test('JobWorker: runs handlers, retries thrown errors, fails permanent ones, completes in the handler transaction', async (t) => {
  const db = await freshVault(t);
  const q = new JobQueue(db, 'w');
  await db.query('CREATE TABLE effects (job_id uuid, attempt int)');
  const events: JobWorkerEvent[] = [];
  const worker = new JobWorker({
    queue: q,
    owner: 'worker-1',
    leaseMs: 2000,
    pollIntervalMs: 20,
    concurrency: 3,
    onEvent: (e) => events.push(e),
    handlers: {
      ok: (job) => Promise.resolve({ doubled: (job.payload as number) * 2 }),
      flaky: (job) => {
        if (job.attempt < 2) return Promise.reject(new Error('transient trouble'));
        return Promise.resolve('second time lucky');
      },
      invalid: async () => {
        const { SecondsiteError } = await import('../../src/domain/errors.js');
        throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'bad payload');
      },
      atomic: async (job, ctx) => {
        await db.transaction(async (tx) => {
          await tx.query('INSERT INTO effects VALUES ($1, $2)', [job.id, job.attempt]);
          await ctx.complete('atomic', tx);
        });
      },
    },
  });
  const ok = (await q.enqueue({ kind: 'ok', payload: 21 })).job;
  const flaky = (await q.enqueue({ kind: 'flaky', payload: null })).job;
  const invalid = (await q.enqueue({ kind: 'invalid', payload: null })).job;
  const atomic = (await q.enqueue({ kind: 'atomic', payload: null })).job;
  const unknown = (await q.enqueue({ kind: 'unknown', payload: null })).job;
  // Retry delay of the flaky job is 1 s (first backoff step).
  worker.start();
  const deadline = Date.now() + 15_000;
  for (;;) {
    const states = await Promise.all(
      [ok, flaky, invalid, atomic].map(async (j) => (await q.get(j.id))?.state),
    );
    if (states.every((s) => s === 'succeeded' || s === 'failed')) break;
    assert.ok(Date.now() < deadline, `jobs did not finish: ${states.join(', ')}`);
    await sleep(50);
  }
  await worker.stop();
  assert.deepEqual((await q.get(ok.id))?.result, { doubled: 42 });
  const f = await q.get(flaky.id);
  assert.equal(f?.state, 'succeeded');
  assert.equal(f?.attempt, 2);
  const inv = await q.get(invalid.id);
  assert.equal(inv?.state, 'failed');
  assert.equal(inv?.attempt, 1);
  assert.deepEqual((inv?.lastError as { code: string }).code, 'SECONDSITE_ERR_INVALID_ARGUMENT');
  assert.equal((await q.get(atomic.id))?.result, 'atomic');
  assert.deepEqual((await db.query('SELECT attempt FROM effects')).rows, [{ attempt: 1 }]);
  assert.equal(
    (await q.get(unknown.id))?.state,
    'queued',
    'kinds without a handler are left for other workers',
  );
  assert.ok(events.some((e) => e.type === 'job:failed' && e.job.id === flaky.id));
});

test('JobWorker: a handler that outlives its lease elsewhere is aborted and its outcome dropped', async (t) => {
  const db = await freshVault(t);
  const q = new JobQueue(db, 'w');
  const { job } = await q.enqueue({ kind: 'slow', payload: null });
  const events: JobWorkerEvent[] = [];
  let aborted: unknown = null;
  const worker = new JobWorker({
    queue: q,
    owner: 'stalled',
    leaseMs: 300,
    pollIntervalMs: 20,
    onEvent: (e) => events.push(e),
    handlers: {
      slow: (_job, ctx) =>
        new Promise((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            aborted = ctx.signal.reason;
            resolve('too late');
          });
        }),
    },
  });
  worker.start();
  for (let i = 0; (await q.get(job.id))?.state !== 'running'; i++) {
    assert.ok(i < 200, 'not claimed');
    await sleep(20);
  }
  // Steal the job as another owner would after expiry: force-expire the lease, then claim.
  await db.query("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1", [job.id]);
  const [other] = (await new JobQueue(db, 'w').claim({ owner: 'other', leaseMs: 60_000 })) as [Job];
  assert.equal(other.attempt, 2);
  for (let i = 0; !aborted; i++) {
    assert.ok(i < 200, 'the stalled handler was not aborted');
    await sleep(20);
  }
  await worker.stop();
  assert.equal((aborted as { code?: string }).code, 'SECONDSITE_ERR_LEASE_LOST');
  assert.ok(events.some((e) => e.type === 'job:lease-lost'));
  const now = await q.get(job.id);
  assert.equal(now?.state, 'running');
  assert.equal(now?.leaseOwner, 'other', 'the stalled owner recorded nothing');
});

test('named leases: one holder at a time, token grows per new holder, renew after loss refused', async (t) => {
  const db = await freshVault(t);
  const a = await acquireLease(db, 'sweeper', 'A', 200);
  assert.ok(a);
  assert.equal(a.token, 1);
  assert.equal(await acquireLease(db, 'sweeper', 'B', 200), null);
  const again = await acquireLease(db, 'sweeper', 'A', 200);
  assert.equal(again?.token, 1, 're-acquiring your own lease keeps the token');
  await renewLease(db, a, 200);
  await sleep(300);
  const b = await acquireLease(db, 'sweeper', 'B', 5000);
  assert.equal(b?.token, 2);
  await assert.rejects(renewLease(db, a, 200), { code: 'SECONDSITE_ERR_LEASE_LOST' });
  assert.equal(await releaseLease(db, a), false);
  assert.equal(await releaseLease(db, b), true);
  const c = await acquireLease(db, 'sweeper', 'C', 5000);
  assert.equal(c?.token, 3, 'a release keeps the token history');
});

test('JobWorker with notifications starts an enqueued job at once, long before its next poll', async (t) => {
  const db = await freshVault(t);
  const q = new JobQueue(db, 'wake');
  const done: string[] = [];
  const worker = new JobWorker({
    queue: q,
    owner: 'listener',
    pollIntervalMs: 60_000,
    notifications: db,
    handlers: { k: (job) => Promise.resolve(void done.push(job.id)) },
  });
  worker.start();
  await sleep(300); // the first (empty) claim is over: the worker now sleeps for a minute
  const startedMs = Date.now();
  // Enqueued in a transaction: the notification goes out at commit, and another queue's does not wake it.
  await new JobQueue(db, 'other').enqueue({ kind: 'k', payload: null });
  const { job } = await db.transaction((tx) => q.enqueue({ kind: 'k', payload: null }, tx));
  while ((await q.get(job.id))?.state !== 'succeeded') {
    assert.ok(Date.now() - startedMs < 10_000, 'the notification did not wake the worker');
    await sleep(20);
  }
  t.diagnostic(`enqueue to done: ${Date.now() - startedMs} ms`);
  await worker.stop();
  assert.deepEqual(done, [job.id]);
});

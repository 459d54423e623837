/**
 * Runs vault jobs (docs/design/vault.md section 7) on the durable queue (persistence.md section 3,
 * queue `orchestration`): a `JobWorker` claims a job with a lease, this runner walks its kind's steps.
 *
 * Per run of a job:
 *   1. A job already ended (or cancelled before it started) completes the queue job and stops.
 *   2. The job is InProgress; tasks Succeeded in an earlier run are skipped and their outputs read.
 *   3. For each other step, in order: the task is InProgress (runs + 1), the step runs, and its
 *      outcome is persisted (task Succeeded with `output`) before the next step starts. A step that
 *      throws fails its task and the job (the error's code and message are the job's).
 *   4. The job is Succeeded (result = the last step's output) in the transaction that completes
 *      the queue job.
 * Every write of a run is fenced by the lease: it commits only in a transaction that first extends
 * this run's lease (`heartbeat` with the run's attempt number), so a run that lost the job (its
 * process stalled past the lease, and another took it) can record nothing. A run whose signal
 * aborted (lease lost, or this process stopping) records nothing either: the lease expires and
 * another vault process runs the job again from its first unfinished step.
 * A step that fails because the database or the network did (a connection lost, PostgreSQL restarting)
 * does not fail the job: the run ends and the queue runs the job again after a backoff, from the
 * same step. Any other error fails the task and the job.
 * Cancel: a cancellable job with a cancel request stops before its next step and at every tick of a
 * wait; its unfinished tasks and the job become Cancelled.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ZodError } from 'zod/v4';
import { SecondsiteError, isSecondsiteError } from '../../domain/errors.js';
import type { Logger } from '../../observability/logger.js';
import type { Database, Queryable } from '../../persistence/database.js';
import { sqlState } from '../../persistence/postgres-errors.js';
import { JobQueue, type Job } from '../../persistence/jobs/job-queue.js';
import { JobWorker, type JobContext, type JobHandler } from '../../persistence/jobs/job-worker.js';
import type { JobState } from '../../protocol/vault-api/jobs.schema.js';
import { registeredCode, type CommandChannel } from '../commands/provider-commands.js';
import type { AnyJobKind, JobStep, StepContext } from './job-kind.js';
import { ORCHESTRATION_QUEUE, addEvent } from './jobs.service.js';

export interface JobRunnerOptions {
  readonly db: Database;
  readonly kinds: ReadonlyMap<string, AnyJobKind>;
  readonly commands: CommandChannel;
  readonly log: Logger;
  /** Lease of a run; default 30 s. Another process takes a job over this long after its owner died. */
  readonly leaseMs?: number;
  /** Jobs run at once by this process; default 8 (they mostly wait). */
  readonly concurrency?: number;
}

/** This process's name in `jobs.lease_owner`: host, pid, random. */
export function workerOwner(): string {
  return `vault-${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

class CancelRequested extends Error {}

interface VaultJobRow {
  state: JobState;
  params: unknown;
  started_by: string;
  cancel_requested_at: Date | null;
  cancel_requested_by: string | null;
  result: unknown;
}

export class JobRunner {
  private readonly worker: JobWorker;
  private readonly queue: JobQueue;
  private readonly leaseMs: number;
  readonly owner = workerOwner();

  constructor(private readonly options: JobRunnerOptions) {
    this.leaseMs = options.leaseMs ?? 30_000;
    this.queue = new JobQueue(options.db, ORCHESTRATION_QUEUE);
    const handlers: Record<string, JobHandler> = {};
    for (const kind of options.kinds.values()) handlers[kind.kind] = (job, ctx) => this.run(kind, job, ctx);
    this.worker = new JobWorker({
      queue: this.queue,
      owner: this.owner,
      handlers,
      leaseMs: this.leaseMs,
      concurrency: options.concurrency ?? 8,
      pollIntervalMs: 1000,
      notifications: options.db,
      onEvent: (e) => {
        if (e.type === 'worker:error') options.log.warn('job worker error', { error: e.error });
        else if (e.type === 'job:lease-lost') options.log.warn('job lease lost', { jobId: e.job.id });
        else if (e.type === 'job:failed')
          options.log.warn('job run failed; it runs again', { jobId: e.job.id, error: e.error });
      },
    });
  }

  start(): void {
    this.worker.start();
  }

  /** Stops claiming and aborts running jobs (their leases expire; another process continues them). */
  async stop(): Promise<void> {
    await this.worker.stop({ abort: true });
  }

  private async run(kind: AnyJobKind, job: Job, wctx: JobContext): Promise<unknown> {
    const { db, log } = this.options;
    const jobId = job.id;
    /** A transaction that commits only while this run holds the job. */
    const fenced = <T>(fn: (tx: Queryable) => Promise<T>): Promise<T> =>
      db.transaction(async (tx) => {
        await this.queue.heartbeat(job, this.leaseMs, tx);
        return fn(tx);
      });
    const read = async (): Promise<VaultJobRow> => {
      const r = await db.query<VaultJobRow>('SELECT * FROM vault_jobs WHERE job_id = $1', [jobId]);
      if (!r.rows[0])
        throw new SecondsiteError('SECONDSITE_ERR_INTERNAL', `queue job ${jobId} has no vault job`);
      return r.rows[0];
    };
    const checkCancel = async (): Promise<void> => {
      if (!kind.cancellable) return;
      if ((await read()).cancel_requested_at !== null) throw new CancelRequested();
    };

    let row = await read();
    if (isFinal(row.state)) {
      await wctx.complete(row.result ?? null, db);
      return row.result;
    }
    if (row.cancel_requested_at !== null && kind.cancellable) return this.cancelled(jobId, row, wctx);
    const startedNow = await fenced(async (tx) => {
      const r = await tx.query(
        `UPDATE vault_jobs SET state = 'InProgress', started_at = coalesce(started_at, now()), updated_at = now()
         WHERE job_id = $1 AND state IN ('NotStarted', 'InProgress')`,
        [jobId],
      );
      if (r.rowCount === 0) return false;
      await addEvent(
        tx,
        jobId,
        null,
        job.attempt > 1 ? 'job.resumed' : 'job.started',
        job.attempt > 1
          ? `run ${job.attempt} by ${this.owner}: the previous run's vault process stopped before the job ended`
          : `run by ${this.owner}`,
      );
      return true;
    });
    if (!startedNow) {
      row = await read(); // cancelled in between
      await wctx.complete(row.result ?? null, db);
      return row.result;
    }
    const params: unknown = kind.params.parse(row.params);
    const tasks = await db.query<{ name: string; state: JobState; output: unknown }>(
      'SELECT name, state, output FROM job_tasks WHERE job_id = $1 ORDER BY position',
      [jobId],
    );
    const outputs = new Map<string, unknown>();
    for (const t of tasks.rows) if (t.state === 'Succeeded') outputs.set(t.name, t.output);

    let last: unknown = null;
    for (const s of kind.steps as readonly JobStep<unknown>[]) {
      if (outputs.has(s.name)) {
        last = outputs.get(s.name);
        continue;
      }
      try {
        await checkCancel();
        await fenced(async (tx) => {
          const r = await tx.query<{ runs: number }>(
            `UPDATE job_tasks SET state = 'InProgress', runs = runs + 1, started_at = coalesce(started_at, now())
             WHERE job_id = $1 AND name = $2 RETURNING runs`,
            [jobId, s.name],
          );
          const runs = r.rows[0]?.runs ?? 1;
          await addEvent(
            tx,
            jobId,
            s.name,
            runs > 1 ? 'task.resumed' : 'task.started',
            runs > 1 ? `${s.title} (run ${runs})` : s.title,
          );
        });
        const ctx = this.stepContext(
          s,
          jobId,
          params,
          row.started_by,
          wctx.signal,
          outputs,
          fenced,
          checkCancel,
        );
        const out = (await s.run(ctx)) ?? null;
        await fenced(async (tx) => {
          await tx.query(
            `UPDATE job_tasks SET state = 'Succeeded', output = $3::jsonb, progress_percent = 100, ended_at = now(),
               error_code = NULL, error_message = NULL
             WHERE job_id = $1 AND name = $2`,
            [jobId, s.name, JSON.stringify(out)],
          );
          await addEvent(tx, jobId, s.name, 'task.succeeded', `${s.title}: done`);
        });
        outputs.set(s.name, out);
        last = out;
      } catch (e) {
        if (wctx.signal.aborted || isSecondsiteError(e, 'SECONDSITE_ERR_LEASE_LOST')) throw e;
        // the database or the network failed, not the step: the queue runs the job again (backoff)
        if (isInfrastructureError(e)) throw e;
        if (e instanceof CancelRequested) return this.cancelled(jobId, await read(), wctx);
        const err = asJobError(e);
        log.warn('job failed', { jobId, kind: kind.kind, step: s.name, error: err });
        await db.transaction(async (tx) => {
          await tx.query(
            `UPDATE job_tasks SET state = 'Failed', ended_at = now(), error_code = $3, error_message = $4
             WHERE job_id = $1 AND name = $2`,
            [jobId, s.name, err.code, err.message],
          );
          await tx.query(
            `UPDATE vault_jobs SET state = 'Failed', ended_at = now(), updated_at = now(), error_code = $2,
               error_message = $3 WHERE job_id = $1`,
            [jobId, err.code, err.message],
          );
          await addEvent(tx, jobId, s.name, 'job.failed', `${s.title}: ${err.message}`);
          await wctx.complete({ failed: err }, tx);
        });
        return null;
      }
    }
    await db.transaction(async (tx) => {
      await tx.query(
        `UPDATE vault_jobs SET state = 'Succeeded', ended_at = now(), updated_at = now(), result = $2::jsonb
         WHERE job_id = $1`,
        [jobId, JSON.stringify(last ?? null)],
      );
      await addEvent(tx, jobId, null, 'job.succeeded', 'all tasks done');
      await wctx.complete(last ?? null, tx);
    });
    return last;
  }

  private async cancelled(jobId: string, row: VaultJobRow, wctx: JobContext): Promise<null> {
    await this.options.db.transaction(async (tx) => {
      await tx.query(
        `UPDATE job_tasks SET state = 'Cancelled', ended_at = now()
         WHERE job_id = $1 AND state IN ('NotStarted', 'InProgress')`,
        [jobId],
      );
      await tx.query(
        `UPDATE vault_jobs SET state = 'Cancelled', ended_at = now(), updated_at = now()
         WHERE job_id = $1 AND state IN ('NotStarted', 'InProgress')`,
        [jobId],
      );
      // a command not delivered yet never will be; one delivered may still run on its server
      await tx.query(
        `UPDATE provider_commands SET state = 'failed', error_code = 'SECONDSITE_ERR_INVALID_STATE',
           error_message = 'the job was cancelled before the command was delivered', completed_at = now()
         WHERE job_id = $1 AND state = 'queued'`,
        [jobId],
      );
      await addEvent(tx, jobId, null, 'job.cancelled', `cancelled by ${row.cancel_requested_by ?? 'a user'}`);
      await wctx.complete(null, tx);
    });
    return null;
  }

  private stepContext(
    s: JobStep<unknown>,
    jobId: string,
    params: unknown,
    startedBy: string,
    signal: AbortSignal,
    outputs: ReadonlyMap<string, unknown>,
    fenced: <T>(fn: (tx: Queryable) => Promise<T>) => Promise<T>,
    checkCancel: () => Promise<void>,
  ): StepContext<unknown> {
    const { db, commands } = this.options;
    const progress = async (percent: number, message?: string): Promise<void> => {
      const p = Math.max(0, Math.min(100, Math.round(percent)));
      await fenced((tx) =>
        tx.query(
          `UPDATE job_tasks SET progress_percent = $3, message = coalesce($4, message)
           WHERE job_id = $1 AND name = $2`,
          [jobId, s.name, p, message ?? null],
        ),
      );
    };
    return {
      jobId,
      params,
      startedBy,
      signal,
      db,
      output<T>(stepName: string): T {
        if (!outputs.has(stepName))
          throw new SecondsiteError(
            'SECONDSITE_ERR_INTERNAL',
            `step ${s.name} read step ${stepName}'s output before it ran`,
          );
        return outputs.get(stepName) as T;
      },
      progress,
      event: (message) => fenced((tx) => addEvent(tx, jobId, s.name, 'task.event', message)),
      transaction: fenced,
      async sendCommand(input) {
        const command = await fenced((tx) =>
          commands.record(
            {
              managementServerId: input.managementServerId,
              jobId,
              step: input.key === undefined ? s.name : `${s.name}/${input.key}`,
              kind: input.kind,
              body: input.body,
              timeoutSeconds: input.timeoutSeconds,
            },
            tx,
          ),
        );
        const who = `management server ${command.managementServerName}`;
        await progress(0, `waiting for ${who} to run ${command.kind} (command ${command.commandId})`);
        const done = await commands.outcome(command.commandId, signal, checkCancel);
        if (done.state === 'failed' || done.error) {
          const code = done.error?.code ?? 'SECONDSITE_ERR_INTERNAL';
          throw new SecondsiteError(
            registeredCode(code),
            code === 'SECONDSITE_ERR_TIMEOUT'
              ? (done.error?.message ?? `${who} did not answer`)
              : `${who} failed command ${done.kind} (${done.commandId}): ${done.error?.message ?? ''} [${code}]`,
            { commandId: done.commandId, managementServerId: done.managementServerId, providerCode: code },
          );
        }
        await fenced((tx) =>
          addEvent(tx, jobId, s.name, 'task.event', `${who} ran ${done.kind} (command ${done.commandId})`),
        );
        if (!input.parse) return done.result as never;
        try {
          return input.parse(done.result);
        } catch (e) {
          throw new SecondsiteError(
            'SECONDSITE_ERR_PROTOCOL',
            `${who} answered ${done.kind} with a result this vault does not understand: ${e instanceof ZodError ? e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') : String(e)}`,
            { commandId: done.commandId },
          );
        }
      },
      async waitFor(check, options) {
        for (;;) {
          signal.throwIfAborted();
          const value = await check();
          if (value !== undefined) return value;
          const r = await db.query<{ remaining: number }>(
            `SELECT extract(epoch FROM (started_at + make_interval(secs => $3) - now()))::float8 AS remaining
             FROM job_tasks WHERE job_id = $1 AND name = $2`,
            [jobId, s.name, options.timeoutSeconds],
          );
          const remainingMs = Number(r.rows[0]?.remaining ?? 0) * 1000;
          if (remainingMs <= 0) {
            throw new SecondsiteError('SECONDSITE_ERR_TIMEOUT', options.timeoutMessage, {
              timeoutSeconds: options.timeoutSeconds,
            });
          }
          await checkCancel();
          await sleep(Math.min(options.pollMs ?? 1000, remainingMs), undefined, { signal });
        }
      },
    };
  }
}

const CONNECTION_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH']);

/** A lost database connection, PostgreSQL shutting down or out of resources, a socket error. */
export function isInfrastructureError(e: unknown): boolean {
  if (isSecondsiteError(e) || e instanceof ZodError || !(e instanceof Error)) return false;
  const state = sqlState(e);
  if (state !== undefined) return /^(08|53|57P0)/.test(state);
  const errno = (e as NodeJS.ErrnoException).code;
  if (errno !== undefined && CONNECTION_ERRNOS.has(errno)) return true;
  return /Connection terminated|connection (is )?(lost|closed)|Client has encountered a connection error/i.test(
    e.message,
  );
}

function isFinal(state: JobState): boolean {
  return state === 'Succeeded' || state === 'Failed' || state === 'Cancelled';
}

function asJobError(e: unknown): { code: string; message: string } {
  if (isSecondsiteError(e)) return { code: e.code, message: e.message };
  if (e instanceof ZodError)
    return { code: 'SECONDSITE_ERR_INVALID_ARGUMENT', message: e.issues.map((i) => i.message).join('; ') };
  return { code: 'SECONDSITE_ERR_INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

/**
 * Jobs as users see them (docs/design/vault.md section 7): starting one (its row, its tasks and its
 * queue job in one transaction), listing, showing with tasks and events, and cancelling.
 *
 * A vault job's id is its queue job's id (persistence.md section 3, queue `orchestration`); the queue
 * runs it (job-runner.ts), this table says what users see. When the queue gave up on a job (its
 * runs were all cut short), the view shows it Failed with the queue's error, and the next start of
 * the same exclusive key first records that.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Database, Queryable } from '../../persistence/database.js';
import { JobQueue } from '../../persistence/jobs/job-queue.js';
import { isUniqueViolation } from '../../persistence/postgres-errors.js';
import type {
  JobDetail,
  JobEventView,
  JobState,
  JobTaskView,
  JobView,
} from '../../protocol/vault-api/jobs.schema.js';
import { isUuid } from '../commands/provider-commands.js';
import type { AnyJobKind } from './job-kind.js';

export const ORCHESTRATION_QUEUE = 'orchestration';
/** Runs of a job the queue allows (each vault process killed during it costs one). */
export const ORCHESTRATION_MAX_RUNS = 20;

export interface StartJobInput {
  readonly kind: string;
  readonly params: unknown;
  readonly target: { readonly type: string; readonly id: string; readonly name: string };
  readonly startedBy: string;
  /** At most one unfinished job per key; starting another returns the running one. */
  readonly exclusiveKey?: string;
}

export interface JobFilter {
  readonly state?: JobState;
  readonly kind?: string;
  readonly limit?: number;
}

interface JobRow {
  job_id: string;
  kind: string;
  title: string;
  target_type: string;
  target_id: string;
  target_name: string;
  state: JobState;
  queue_state: string | null;
  queue_error: { code?: string; message?: string } | null;
  started_by: string;
  cancel_requested_at: Date | null;
  result: unknown;
  error_code: string | null;
  error_message: string | null;
  created_at: Date;
  started_at: Date | null;
  ended_at: Date | null;
  progress: number;
}

interface TaskRow {
  name: string;
  title: string;
  state: JobState;
  progress_percent: number;
  message: string;
  runs: number;
  error_code: string | null;
  error_message: string | null;
  started_at: Date | null;
  ended_at: Date | null;
}

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

const SELECT_JOBS = `SELECT v.*, q.state AS queue_state, q.last_error AS queue_error,
    CASE WHEN v.state IN ('NotStarted', 'InProgress') AND q.state IN ('failed', 'succeeded') THEN 'Failed'
         ELSE v.state END AS effective_state,
    (SELECT coalesce(round(avg(CASE WHEN t.state = 'Succeeded' THEN 100 ELSE t.progress_percent END)), 0)
       FROM job_tasks t WHERE t.job_id = v.job_id)::int AS progress
  FROM vault_jobs v LEFT JOIN jobs q ON q.id = v.job_id`;

export class JobsService {
  private readonly queue: JobQueue;

  constructor(
    private readonly db: Database,
    private readonly kinds: ReadonlyMap<string, AnyJobKind>,
  ) {
    this.queue = new JobQueue(db, ORCHESTRATION_QUEUE);
  }

  /** Starts a job (NotStarted until a vault process claims it); returns its id. */
  async start(input: StartJobInput): Promise<{ jobId: string; created: boolean }> {
    const kind = this.kinds.get(input.kind);
    if (!kind) throw new SecondsiteError('SECONDSITE_ERR_INTERNAL', `no job kind ${input.kind}`);
    const params: unknown = kind.params.parse(input.params);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.db.transaction(async (tx) => {
          if (input.exclusiveKey !== undefined) {
            await this.settleAbandoned(tx, input.exclusiveKey);
            const running = await tx.query<{ job_id: string }>(
              `SELECT job_id FROM vault_jobs WHERE exclusive_key = $1 AND state IN ('NotStarted', 'InProgress')`,
              [input.exclusiveKey],
            );
            if (running.rows[0]) return { jobId: running.rows[0].job_id, created: false };
          }
          const { job } = await this.queue.enqueue(
            { kind: kind.kind, payload: {}, maxAttempts: ORCHESTRATION_MAX_RUNS },
            tx,
          );
          await tx.query(
            `INSERT INTO vault_jobs (job_id, kind, title, target_type, target_id, target_name, params,
               started_by, exclusive_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)`,
            [
              job.id,
              kind.kind,
              kind.title(params, input.target.name),
              input.target.type,
              input.target.id,
              input.target.name,
              JSON.stringify(params ?? {}),
              input.startedBy,
              input.exclusiveKey ?? null,
            ],
          );
          for (const [position, s] of kind.steps.entries()) {
            await tx.query('INSERT INTO job_tasks (job_id, position, name, title) VALUES ($1, $2, $3, $4)', [
              job.id,
              position,
              s.name,
              s.title,
            ]);
          }
          await addEvent(tx, job.id, null, 'job.created', `started by ${input.startedBy}`);
          return { jobId: job.id, created: true };
        });
      } catch (e) {
        // another vault process started the same exclusive job at the same moment: answer its id
        if (!isUniqueViolation(e) || attempt >= 2) throw e;
      }
    }
  }

  async list(filter: JobFilter = {}): Promise<JobView[]> {
    const { rows } = await this.db.query<JobRow>(
      `SELECT * FROM (${SELECT_JOBS}) j
       WHERE ($1::text IS NULL OR j.kind = $1) AND ($2::text IS NULL OR j.effective_state = $2)
       ORDER BY j.created_at DESC LIMIT $3`,
      [filter.kind ?? null, filter.state ?? null, filter.limit ?? 100],
    );
    return rows.map((r) => this.view(r));
  }

  async get(jobId: string): Promise<JobDetail> {
    const job = await this.find(jobId);
    const tasks = await this.db.query<TaskRow>(
      'SELECT * FROM job_tasks WHERE job_id = $1 ORDER BY position',
      [jobId],
    );
    const events = await this.db.query<{ at: Date; task_name: string | null; kind: string; message: string }>(
      'SELECT * FROM job_events WHERE job_id = $1 ORDER BY event_id',
      [jobId],
    );
    return {
      ...job,
      tasks: tasks.rows.map(taskView),
      events: events.rows.map((e): JobEventView => ({
        at: e.at.toISOString(),
        task: e.task_name,
        kind: e.kind,
        message: e.message,
      })),
    };
  }

  /**
   * Cancels a job of a cancellable kind: one not started is Cancelled at once; a running one stops
   * at its next step boundary or wait (the runner records Cancelled). INVALID_STATE when it ended.
   */
  async cancel(jobId: string, by: string): Promise<JobView> {
    const job = await this.find(jobId);
    const kind = this.kinds.get(job.kind);
    if (!kind?.cancellable) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `a ${job.kind} job cannot be cancelled; wait for it to end ('secondsite vault job wait ${jobId}')`,
        { jobId, kind: job.kind },
      );
    }
    await this.db.transaction(async (tx) => {
      const r = await tx.query<{ state: JobState }>(
        `UPDATE vault_jobs SET
           state = CASE WHEN state = 'NotStarted' THEN 'Cancelled' ELSE state END,
           ended_at = CASE WHEN state = 'NotStarted' THEN now() ELSE ended_at END,
           cancel_requested_at = coalesce(cancel_requested_at, now()),
           cancel_requested_by = coalesce(cancel_requested_by, $2), updated_at = now()
         WHERE job_id = $1 AND state IN ('NotStarted', 'InProgress')
         RETURNING state`,
        [jobId, by],
      );
      const row = r.rows[0];
      if (!row) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          `job ${jobId} already ended (${job.state}); nothing to cancel`,
          { jobId, state: job.state },
        );
      }
      if (row.state === 'Cancelled') {
        await tx.query(
          `UPDATE job_tasks SET state = 'Cancelled', ended_at = now() WHERE job_id = $1 AND state = 'NotStarted'`,
          [jobId],
        );
      }
      await addEvent(tx, jobId, null, 'job.cancel-requested', `cancel requested by ${by}`);
    });
    return this.find(jobId);
  }

  private async find(jobId: string): Promise<JobView> {
    const { rows } = isUuid(jobId)
      ? await this.db.query<JobRow>(`${SELECT_JOBS} WHERE v.job_id = $1`, [jobId])
      : { rows: [] };
    const row = rows[0];
    if (!row) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `no job ${jobId}; list them with 'secondsite vault job list'`,
        { jobId },
      );
    }
    return this.view(row);
  }

  /** Records Failed for unfinished jobs of `key` the queue gave up on. */
  private async settleAbandoned(tx: Queryable, key: string): Promise<void> {
    await this.queue.reclaimExpired(tx);
    await tx.query(
      `UPDATE vault_jobs v SET state = 'Failed', ended_at = now(), updated_at = now(),
         error_code = coalesce(q.last_error->>'code', 'SECONDSITE_ERR_LEASE_LOST'),
         error_message = coalesce(q.last_error->>'message', 'the job stopped')
       FROM jobs q WHERE q.id = v.job_id AND v.exclusive_key = $1
         AND v.state IN ('NotStarted', 'InProgress') AND q.state IN ('failed', 'succeeded')`,
      [key],
    );
  }

  private view(r: JobRow): JobView {
    const abandoned =
      (r.state === 'NotStarted' || r.state === 'InProgress') &&
      (r.queue_state === 'failed' || r.queue_state === 'succeeded');
    const error = abandoned
      ? {
          code: r.queue_error?.code ?? 'SECONDSITE_ERR_LEASE_LOST',
          message: `the job stopped: ${r.queue_error?.message ?? 'no vault process could finish it'}`,
        }
      : r.error_code === null
        ? null
        : { code: r.error_code, message: r.error_message ?? '' };
    return {
      jobId: r.job_id,
      kind: r.kind,
      title: r.title,
      target: { type: r.target_type, id: r.target_id, name: r.target_name },
      state: abandoned ? 'Failed' : r.state,
      progressPercent: r.state === 'Succeeded' ? 100 : Math.min(100, Math.max(0, r.progress)),
      startedBy: r.started_by,
      cancellable: this.kinds.get(r.kind)?.cancellable ?? false,
      cancelRequestedAt: iso(r.cancel_requested_at),
      createdAt: r.created_at.toISOString(),
      startedAt: iso(r.started_at),
      endedAt: iso(r.ended_at),
      error,
      result: r.result ?? null,
    };
  }
}

function taskView(t: TaskRow): JobTaskView {
  return {
    name: t.name,
    title: t.title,
    state: t.state,
    progressPercent: t.state === 'Succeeded' ? 100 : t.progress_percent,
    message: t.message,
    runs: t.runs,
    startedAt: iso(t.started_at),
    endedAt: iso(t.ended_at),
    error: t.error_code === null ? null : { code: t.error_code, message: t.error_message ?? '' },
  };
}

export async function addEvent(
  via: Queryable,
  jobId: string,
  task: string | null,
  kind: string,
  message: string,
): Promise<void> {
  await via.query('INSERT INTO job_events (job_id, task_name, kind, message) VALUES ($1, $2, $3, $4)', [
    jobId,
    task,
    kind,
    message,
  ]);
}

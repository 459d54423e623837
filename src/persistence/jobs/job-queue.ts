/**
 * A durable work queue in PostgreSQL (table `jobs`, migration 0001), shared by any number of processes.
 *
 * States and the one place each changes (every change is one UPDATE guarded by the current state):
 *
 *   enqueue ──> queued ──claim──> running ──complete──> succeeded
 *                 ^                  │ ──fail (permanent, or out of attempts)──> failed
 *                 └──fail (retry)────┤
 *                 └──reclaim─────────┘  (lease expired; `failed` instead when out of attempts)
 *
 * Guarantees (with every process using this module on one database):
 *   - A claim hands a job to one owner: the row is locked `FOR UPDATE SKIP LOCKED` and updated in the
 *     same statement, so two claimers never get the same job.
 *   - A claim is a lease for `leaseMs` measured on the database clock (no clock skew between
 *     processes). The owner extends it with `heartbeat`. Only after it expired can another process
 *     reclaim the job; the job then counts one more attempt.
 *   - Fencing: a claim returns the attempt number; heartbeat, complete and fail name it and are
 *     refused with SECONDSITE_ERR_LEASE_LOST once the job was reclaimed (or finished) by anyone else.
 *     So an owner that stalled past its lease can never record an outcome over the new owner's.
 *   - A job whose owner died is not lost: it runs again after the lease, up to `maxAttempts` runs.
 * Not guaranteed: that a stalled owner stops its side effects at once. Handlers stop when a heartbeat
 * fails (job-worker.ts aborts them) and make effects outside this database idempotent or fenced by
 * the attempt number; effects in this database go in the same transaction as `complete` (`via`).
 *
 * Idempotency: `enqueue` with an `idempotencyKey` creates the job once per queue; repeating it returns
 * the existing job, and the same key with another kind or payload is refused (ALREADY_EXISTS).
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Queryable } from '../database.js';

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed';

export interface Job<P = unknown> {
  readonly id: string;
  readonly queue: string;
  readonly kind: string;
  readonly payload: P;
  readonly idempotencyKey: string | null;
  readonly state: JobState;
  /** Runs started so far; while running, the current run's number (the fencing token). */
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly runAfter: Date;
  readonly leaseOwner: string | null;
  readonly leaseExpiresAt: Date | null;
  readonly result: unknown;
  /** `{ code?, message, ... }` of the last failure or lost lease. */
  readonly lastError: unknown;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly finishedAt: Date | null;
}

export interface EnqueueInput<P> {
  readonly kind: string;
  readonly payload: P;
  readonly idempotencyKey?: string;
  /** Default 5. */
  readonly maxAttempts?: number;
  /** Not before this many ms from now (database clock); default 0. */
  readonly delayMs?: number;
}

export interface ClaimOptions {
  /** Who claims: a stable, unique id per worker process (e.g. `vault-<host>-<pid>-<random>`). */
  readonly owner: string;
  readonly leaseMs: number;
  /** At most this many jobs (default 1). */
  readonly limit?: number;
  /** Only these kinds (default all). */
  readonly kinds?: readonly string[];
}

export interface FailOptions {
  /** No further attempt, whatever the attempts left. */
  readonly permanent?: boolean;
  /** Delay before the next attempt; default min(1 s * 2^(attempt-1), 60 s). */
  readonly retryDelayMs?: number;
}

/** What identifies a lease on a job: the job, its owner and the run. */
export type JobLease = Pick<Job, 'id' | 'leaseOwner' | 'attempt'>;

interface JobRow {
  id: string;
  queue: string;
  kind: string;
  payload: unknown;
  idempotency_key: string | null;
  state: JobState;
  attempts: number;
  max_attempts: number;
  run_after: Date;
  lease_owner: string | null;
  lease_expires_at: Date | null;
  result: unknown;
  last_error: unknown;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

const MAX_RETRY_DELAY_MS = 60_000;

/** The NOTIFY channel `enqueue` signals on, with the queue name as payload. */
export const JOBS_CHANNEL = 'secondsite_jobs';

/** One named queue in the `jobs` table. Every method takes an optional `via` (a transaction). */
export class JobQueue {
  constructor(
    private readonly db: Queryable,
    readonly queue: string,
  ) {}

  /** Adds a job (once per idempotency key); `created` is false when the key already existed. */
  async enqueue<P>(
    input: EnqueueInput<P>,
    via: Queryable = this.db,
  ): Promise<{ job: Job<P>; created: boolean }> {
    const payload = JSON.stringify(input.payload ?? null);
    const inserted = await via.query<JobRow>(
      `INSERT INTO jobs (queue, kind, payload, idempotency_key, max_attempts, run_after)
       VALUES ($1, $2, $3::jsonb, $4, $5, now() + make_interval(secs => $6::double precision / 1000))
       ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
       RETURNING *`,
      [
        this.queue,
        input.kind,
        payload,
        input.idempotencyKey ?? null,
        input.maxAttempts ?? 5,
        input.delayMs ?? 0,
      ],
    );
    const row = inserted.rows[0];
    if (row) {
      // Wakes idle workers (delivered at commit when `via` is a transaction); they also poll.
      await via.query('SELECT pg_notify($1, $2)', [JOBS_CHANNEL, this.queue]);
      return { job: toJob<P>(row), created: true };
    }
    const existing = await via.query<JobRow & { same: boolean }>(
      `SELECT *, (kind = $3 AND payload = $4::jsonb) AS same FROM jobs WHERE queue = $1 AND idempotency_key = $2`,
      [this.queue, input.idempotencyKey, input.kind, payload],
    );
    const found = existing.rows[0];
    if (!found) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INTERNAL',
        `job with idempotency key '${input.idempotencyKey}' conflicted but cannot be read back`,
      );
    }
    if (!found.same) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_ALREADY_EXISTS',
        `a job with idempotency key '${input.idempotencyKey}' already exists in queue '${this.queue}' with another kind or payload (job ${found.id}, kind ${found.kind}); use a new key for a different request.`,
        { jobId: found.id, queue: this.queue, idempotencyKey: input.idempotencyKey },
      );
    }
    return { job: toJob<P>(found), created: false };
  }

  /**
   * Reclaims expired leases, then leases up to `limit` ready jobs to `owner`, oldest first. Returns
   * the claimed jobs (state running, `attempt` = this run). Never blocks on jobs other claimers hold.
   */
  async claim(options: ClaimOptions, via: Queryable = this.db): Promise<Job[]> {
    await this.reclaimExpired(via);
    const { rows } = await via.query<JobRow>(
      `WITH next AS (
         SELECT id FROM jobs
         WHERE queue = $1 AND state = 'queued' AND run_after <= now()
           AND ($4::text[] IS NULL OR kind = ANY($4::text[]))
         ORDER BY run_after, created_at
         LIMIT $3
         FOR UPDATE SKIP LOCKED)
       UPDATE jobs j SET state = 'running', attempts = j.attempts + 1, lease_owner = $2,
         lease_expires_at = now() + make_interval(secs => $5::double precision / 1000), updated_at = now()
       FROM next WHERE j.id = next.id
       RETURNING j.*`,
      [this.queue, options.owner, options.limit ?? 1, options.kinds ?? null, options.leaseMs],
    );
    return rows.map((r) => toJob(r)).sort((a, b) => a.runAfter.getTime() - b.runAfter.getTime());
  }

  /**
   * Ends the leases that expired: their jobs go back to queued (or to failed when out of attempts),
   * with a LEASE_LOST last error. Returns how many. `claim` calls it; call it alone to keep job states
   * truthful without claiming.
   */
  async reclaimExpired(via: Queryable = this.db): Promise<number> {
    const { rowCount } = await via.query(
      `UPDATE jobs SET
         state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
         finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
         last_error = jsonb_build_object(
           'code', 'SECONDSITE_ERR_LEASE_LOST',
           'message', format('the lease of %s on attempt %s expired at %s without a heartbeat (the owner stopped or was cut off)',
                             lease_owner, attempts, lease_expires_at)),
         lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
       WHERE queue = $1 AND state = 'running' AND lease_expires_at <= now()`,
      [this.queue],
    );
    return rowCount;
  }

  /** Extends the lease to `leaseMs` from now; LEASE_LOST if the job is no longer this run's. */
  async heartbeat(lease: JobLease, leaseMs: number, via: Queryable = this.db): Promise<Job> {
    const { rows } = await via.query<JobRow>(
      `UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $4::double precision / 1000), updated_at = now()
       WHERE id = $1 AND state = 'running' AND lease_owner = $2 AND attempts = $3
       RETURNING *`,
      [lease.id, lease.leaseOwner, lease.attempt, leaseMs],
    );
    return this.leaseHeld(rows, lease, via, 'extend the lease of');
  }

  /** Records success with `result`; LEASE_LOST if the job is no longer this run's. */
  async complete(lease: JobLease, result: unknown = null, via: Queryable = this.db): Promise<Job> {
    const { rows } = await via.query<JobRow>(
      `UPDATE jobs SET state = 'succeeded', result = $4::jsonb, lease_owner = NULL, lease_expires_at = NULL,
         finished_at = now(), updated_at = now()
       WHERE id = $1 AND state = 'running' AND lease_owner = $2 AND attempts = $3
       RETURNING *`,
      [lease.id, lease.leaseOwner, lease.attempt, JSON.stringify(result ?? null)],
    );
    return this.leaseHeld(rows, lease, via, 'complete');
  }

  /**
   * Records a failed run: queued again after a delay while attempts remain and the error is not
   * permanent, failed otherwise. LEASE_LOST if the job is no longer this run's.
   */
  async fail(
    lease: JobLease,
    error: { readonly message: string; readonly code?: string; readonly details?: unknown },
    options: FailOptions = {},
    via: Queryable = this.db,
  ): Promise<Job> {
    const delayMs =
      options.retryDelayMs ?? Math.min(1000 * 2 ** Math.max(0, lease.attempt - 1), MAX_RETRY_DELAY_MS);
    const { rows } = await via.query<JobRow>(
      `UPDATE jobs SET
         state = CASE WHEN $5::boolean OR attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
         finished_at = CASE WHEN $5::boolean OR attempts >= max_attempts THEN now() END,
         run_after = now() + make_interval(secs => $6::double precision / 1000),
         last_error = $4::jsonb, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
       WHERE id = $1 AND state = 'running' AND lease_owner = $2 AND attempts = $3
       RETURNING *`,
      [lease.id, lease.leaseOwner, lease.attempt, JSON.stringify(error), options.permanent ?? false, delayMs],
    );
    return this.leaseHeld(rows, lease, via, 'record the failure of');
  }

  /** The job, or null. */
  async get(id: string, via: Queryable = this.db): Promise<Job | null> {
    const { rows } = await via.query<JobRow>('SELECT * FROM jobs WHERE id = $1 AND queue = $2', [
      id,
      this.queue,
    ]);
    return rows[0] ? toJob(rows[0]) : null;
  }

  private async leaseHeld(rows: JobRow[], lease: JobLease, via: Queryable, what: string): Promise<Job> {
    const row = rows[0];
    if (row) return toJob(row);
    const now = await this.get(lease.id, via);
    throw new SecondsiteError(
      'SECONDSITE_ERR_LEASE_LOST',
      `cannot ${what} job ${lease.id}: attempt ${lease.attempt} of ${lease.leaseOwner} no longer holds it (now ${now ? `${now.state}, attempt ${now.attempt}, owner ${now.leaseOwner ?? 'none'}` : 'gone'}). Stop working on it; another run owns it or it is finished.`,
      { jobId: lease.id, attempt: lease.attempt, owner: lease.leaseOwner, state: now?.state ?? null },
    );
  }
}

function toJob<P = unknown>(r: JobRow): Job<P> {
  return {
    id: r.id,
    queue: r.queue,
    kind: r.kind,
    payload: r.payload as P,
    idempotencyKey: r.idempotency_key,
    state: r.state,
    attempt: r.attempts,
    maxAttempts: r.max_attempts,
    runAfter: r.run_after,
    leaseOwner: r.lease_owner,
    leaseExpiresAt: r.lease_expires_at,
    result: r.result,
    lastError: r.last_error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    finishedAt: r.finished_at,
  };
}

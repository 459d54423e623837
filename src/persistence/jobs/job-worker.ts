/**
 * Runs jobs of one queue with handlers, in this process, next to any number of workers elsewhere.
 *
 * Loop: claim up to `concurrency - running` jobs of the kinds it has handlers for (other kinds stay
 * queued for other workers); for each, call the handler of its kind with an AbortSignal, and
 * heartbeat every `leaseMs / 3` while it runs. Outcome:
 *   - handler resolves               -> complete(result) (unless it completed itself with `ctx.complete`);
 *   - handler throws a SecondsiteError whose retry class is 'permanent', or no handler for the kind
 *                                     -> fail, permanent;
 *   - handler throws anything else    -> fail, retried with backoff while attempts remain;
 *   - a heartbeat finds the lease lost -> the signal aborts (reason: the LEASE_LOST error) and the
 *                                        outcome is dropped: another run owns the job now.
 * When nothing was claimed the loop sleeps `pollIntervalMs`, or less: with `notifications`, an
 * enqueue on this queue (NOTIFY, job-queue.ts) wakes it at once. `stop()` stops claiming, aborts the
 * handlers' signals if asked, and waits for them; their jobs are then completed or failed as above
 * (or, if the process dies first, reclaimed by another worker after the lease).
 */
import { isSecondsiteError } from '../../domain/errors.js';
import type { Database, Queryable } from '../database.js';
import type { Listener } from '../notification-listener.js';
import { JOBS_CHANNEL, type Job, type JobQueue } from './job-queue.js';

export interface JobContext {
  /** Aborted when the lease is lost or the worker stops with `abort`. */
  readonly signal: AbortSignal;
  /** Extends the lease now (the worker also does it on a timer); throws LEASE_LOST. */
  heartbeat(): Promise<void>;
  /** Completes the job inside the caller's transaction, so its writes and the completion commit together. */
  complete(result: unknown, via: Queryable): Promise<void>;
}

export type JobHandler = (job: Job, ctx: JobContext) => Promise<unknown>;

export type JobWorkerEvent =
  | { type: 'job:claimed'; job: Job }
  | { type: 'job:succeeded'; job: Job }
  | { type: 'job:failed'; job: Job; error: unknown }
  | { type: 'job:lease-lost'; job: Job; error: unknown }
  | { type: 'worker:error'; error: unknown };

export interface JobWorkerOptions {
  readonly queue: JobQueue;
  /** Unique per worker process (ends up in jobs.lease_owner). */
  readonly owner: string;
  readonly handlers: Readonly<Record<string, JobHandler>>;
  /** Lease length; default 30 s. A handler that stalls longer than this may be run elsewhere. */
  readonly leaseMs?: number;
  /** Jobs run at once; default 1. */
  readonly concurrency?: number;
  /** Sleep when the queue is empty; default 500 ms. */
  readonly pollIntervalMs?: number;
  readonly onEvent?: (event: JobWorkerEvent) => void;
  /** Listen for enqueues on this database to start new jobs at once instead of at the next poll. */
  readonly notifications?: Pick<Database, 'listen'>;
}

export class JobWorker {
  private readonly running = new Set<Promise<void>>();
  private readonly controllers = new Set<AbortController>();
  private loop: Promise<void> | null = null;
  private stopping = false;
  private wake: (() => void) | null = null;
  private notified = false;
  private listener: Listener | null = null;
  private readonly leaseMs: number;
  private readonly concurrency: number;
  private readonly pollIntervalMs: number;

  constructor(private readonly options: JobWorkerOptions) {
    this.leaseMs = options.leaseMs ?? 30_000;
    this.concurrency = options.concurrency ?? 1;
    this.pollIntervalMs = options.pollIntervalMs ?? 500;
  }

  /** Starts the loop (idempotent). */
  start(): void {
    this.loop ??= this.run();
  }

  /** Stops claiming and waits for running handlers; `abort` aborts their signals first. */
  async stop(options: { abort?: boolean } = {}): Promise<void> {
    this.stopping = true;
    this.wake?.();
    if (options.abort) for (const c of this.controllers) c.abort(new Error('the worker is stopping'));
    await this.loop;
    await Promise.all([...this.running]);
    await this.listener?.close();
  }

  private async run(): Promise<void> {
    const kinds = Object.keys(this.options.handlers);
    if (this.options.notifications) {
      const queueName = this.options.queue.queue;
      try {
        this.listener = await this.options.notifications.listen(JOBS_CHANNEL, (payload) => {
          if (payload !== queueName) return;
          this.notified = true;
          this.wake?.();
        });
      } catch (error) {
        this.emit({ type: 'worker:error', error }); // polling still works
      }
    }
    while (!this.stopping) {
      let claimed: Job[] = [];
      const free = this.concurrency - this.running.size;
      if (free > 0) {
        this.notified = false; // this claim sees every job enqueued before it; later ones notify again
        try {
          claimed = await this.options.queue.claim({
            owner: this.options.owner,
            leaseMs: this.leaseMs,
            limit: free,
            kinds,
          });
        } catch (error) {
          this.emit({ type: 'worker:error', error });
        }
      }
      for (const job of claimed) {
        const p: Promise<void> = this.runJob(job).finally(() => {
          this.running.delete(p);
          this.wake?.();
        });
        this.running.add(p);
      }
      if (claimed.length === 0 || this.running.size >= this.concurrency) await this.idle();
    }
  }

  private idle(): Promise<void> {
    if (this.notified && this.running.size < this.concurrency) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, this.pollIntervalMs);
      this.wake = done;
    });
  }

  private async runJob(job: Job): Promise<void> {
    const { queue } = this.options;
    this.emit({ type: 'job:claimed', job });
    const controller = new AbortController();
    this.controllers.add(controller);
    let leaseLost: unknown = null;
    let completedByHandler = false;
    const heartbeat = async (): Promise<void> => {
      try {
        await queue.heartbeat(job, this.leaseMs);
      } catch (error) {
        if (isSecondsiteError(error, 'SECONDSITE_ERR_LEASE_LOST')) {
          leaseLost = error;
          controller.abort(error);
        }
        throw error;
      }
    };
    const beat = (): void => void heartbeat().catch(() => {}); // a failed beat is retried; LEASE_LOST aborts
    const timer = setInterval(beat, Math.max(50, Math.floor(this.leaseMs / 3)));
    const ctx: JobContext = {
      signal: controller.signal,
      heartbeat,
      complete: async (result, via) => {
        await queue.complete(job, result, via);
        completedByHandler = true;
      },
    };
    try {
      const handler = this.options.handlers[job.kind];
      let result: unknown;
      try {
        if (!handler)
          throw new Error(`no handler for job kind '${job.kind}' in worker ${this.options.owner}`);
        result = await handler(job, ctx);
      } catch (error) {
        clearInterval(timer);
        if (leaseLost) return this.emit({ type: 'job:lease-lost', job, error: leaseLost });
        const permanent = !handler || (isSecondsiteError(error) && error.retry === 'permanent');
        const failed = await queue.fail(job, describeError(error), { permanent });
        return this.emit({ type: 'job:failed', job: failed, error });
      }
      clearInterval(timer);
      if (leaseLost) return this.emit({ type: 'job:lease-lost', job, error: leaseLost });
      const done = completedByHandler ? job : await queue.complete(job, result ?? null);
      this.emit({ type: 'job:succeeded', job: done });
    } catch (error) {
      // complete/fail refused (LEASE_LOST) or the database is unreachable: the lease will expire and
      // another run will take the job.
      if (isSecondsiteError(error, 'SECONDSITE_ERR_LEASE_LOST'))
        this.emit({ type: 'job:lease-lost', job, error });
      else this.emit({ type: 'worker:error', error });
    } finally {
      clearInterval(timer);
      this.controllers.delete(controller);
    }
  }

  private emit(event: JobWorkerEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // a listener's bug must not stop the worker
    }
  }
}

function describeError(error: unknown): { message: string; code?: string; details?: unknown } {
  if (isSecondsiteError(error)) return { code: error.code, message: error.message, details: error.details };
  if (error instanceof Error) return { message: error.message };
  return { message: String(error) };
}

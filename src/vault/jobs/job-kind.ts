/**
 * How a job kind is written (docs/design/vault.md section 7): ordered, named steps, each idempotent,
 * each returning a JSON outcome that is persisted (task Succeeded, `job_tasks.output`) before the next
 * step starts. A vault process killed mid-job leaves a lease another process reclaims; the job then
 * runs again from its first step not yet Succeeded, with the earlier outcomes read back
 * (`ctx.output`). So a step must be safe to run again after it was cut short: it reads what it did
 * before (the database, or the command it already recorded: `ctx.sendCommand` records a command once
 * per step and waits for that same command on a re-run), and decides from that.
 *
 *   export const inventoryRefresh = defineJobKind({
 *     kind: 'inventory-refresh', cancellable: true, params: paramsSchema,
 *     steps: [
 *       step('sync', 'Ask the management server for its inventory', (ctx) =>
 *         ctx.sendCommand({ managementServerId: ctx.params.managementServerId, kind: 'inventory.sync',
 *                           body: {}, timeoutSeconds: 120, parse: (r) => resultSchema.parse(r) })),
 *       step('wait-inventory', 'Wait for the inventory', (ctx) => ctx.waitFor(...)),
 *     ],
 *   });
 */
import type { z } from 'zod/v4';
import type { Database, Queryable } from '../../persistence/database.js';

export interface SendCommandInput<R> {
  readonly managementServerId: string;
  /** The provider's handler kind, e.g. `inventory.sync`. */
  readonly kind: string;
  readonly body: unknown;
  /** From when the command was first recorded (a re-run keeps the deadline). */
  readonly timeoutSeconds: number;
  /** Needed only when one step sends several commands: unique within the step. */
  readonly key?: string;
  /** Checks the provider's result (e.g. `schema.parse`); its error fails the task. */
  readonly parse?: (result: unknown) => R;
}

export interface WaitForOptions {
  /** Counted from the task's first start (a re-run keeps the deadline). */
  readonly timeoutSeconds: number;
  /** The task fails with SECONDSITE_ERR_TIMEOUT and this message when time runs out. */
  readonly timeoutMessage: string;
  /** Between checks; default 1000 ms. */
  readonly pollMs?: number;
}

export interface StepContext<P> {
  readonly jobId: string;
  readonly params: P;
  /** Who started the job (a principal's name). */
  readonly startedBy: string;
  /** Aborted when this process lost the job's lease or stops; the step should return promptly. */
  readonly signal: AbortSignal;
  /** For reads. Writes that must not outlive the lease go through `transaction`. */
  readonly db: Database;
  /** The persisted outcome of an earlier step of this job. */
  output<T>(stepName: string): T;
  /** Sets the task's progress (0-100) and message. */
  progress(percent: number, message?: string): Promise<void>;
  /** Appends an event to the job's history. */
  event(message: string): Promise<void>;
  /** A transaction that commits only while this process still holds the job (fenced by its lease). */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Records a command for a management server's provider (once per step and key), waits for its
   * outcome and returns its result. A provider error or the timeout fails the task with its message.
   */
  sendCommand<R = unknown>(input: SendCommandInput<R>): Promise<R>;
  /** Calls `check` until it returns something other than undefined, and returns that. */
  waitFor<T>(check: () => Promise<T | undefined>, options: WaitForOptions): Promise<T>;
}

export interface JobStep<P> {
  /** Stable: persisted in job_tasks and command records. kebab-case. */
  readonly name: string;
  /** What users see. */
  readonly title: string;
  /** Returns the step's outcome (JSON, or undefined); throws to fail the task and the job. */
  run(ctx: StepContext<P>): Promise<unknown>;
}

export interface JobKind<P> {
  /** kebab-case, e.g. `inventory-refresh`; also the queue job's kind. */
  readonly kind: string;
  /** Whether `POST /v1/jobs/:id/cancel` may stop it (between steps, and while a step waits). */
  readonly cancellable: boolean;
  readonly params: z.ZodType<P>;
  readonly steps: readonly JobStep<P>[];
  /** The job's title for users, e.g. `Refresh the inventory of site-a`. */
  title(params: P, targetName: string): string;
}

export function step<P>(
  name: string,
  title: string,
  run: (ctx: StepContext<P>) => Promise<unknown>,
): JobStep<P> {
  return { name, title, run };
}

/** Checks a kind's shape once, where it is defined (names unique and kebab-case). */
export function defineJobKind<P>(kind: JobKind<P>): JobKind<P> {
  const names = new Set<string>();
  for (const s of kind.steps) {
    if (!/^[a-z][a-z0-9-]{0,62}$/.test(s.name) || names.has(s.name))
      throw new Error(`job kind ${kind.kind}: step name '${s.name}' is not unique kebab-case`);
    names.add(s.name);
  }
  if (kind.steps.length === 0) throw new Error(`job kind ${kind.kind} has no steps`);
  return kind;
}

/** A kind with its parameter type erased, for registries. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyJobKind = JobKind<any>;

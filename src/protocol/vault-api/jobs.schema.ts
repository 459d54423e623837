/**
 * Jobs (long operations with ordered tasks and progress) and the provider command channel of the
 * vault's API (docs/design/vault.md section 7).
 *
 * Command channel contract: a provider long-polls `GET /v1/management-servers/:id/commands?waitSeconds=N`
 * (answered at once when commands are queued, else after at most N s with none); it runs each command
 * at most once per `commandId` and posts its outcome to `.../commands/:commandId/result`, either
 * `{ ok: true, result }` or `{ ok: false, error: { code, message } }`. A result posted twice is
 * accepted once (`accepted: false` the second time). A command delivered but not answered is delivered
 * again after `redeliverSeconds`; the provider answers a repeat with the outcome it already has.
 */
import { z } from 'zod/v4';

export const JOB_STATES = ['NotStarted', 'InProgress', 'Succeeded', 'Failed', 'Cancelled'] as const;
export const jobStateSchema = z.enum(JOB_STATES);
export type JobState = z.infer<typeof jobStateSchema>;

/** A job kind's name, e.g. `inventory-refresh`. */
export const jobKindSchema = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,62}$/, 'a job kind is lower-case kebab-case');

export const jobTaskSchema = z.object({
  name: z.string(),
  title: z.string(),
  state: jobStateSchema,
  progressPercent: z.number().int().min(0).max(100),
  message: z.string(),
  /** Runs of this task so far; more than one when a vault process stopped during it. */
  runs: z.number().int(),
  startedAt: z.string().nullable(),
  endedAt: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});

export const jobSchema = z.object({
  jobId: z.string(),
  kind: z.string(),
  title: z.string(),
  target: z.object({ type: z.string(), id: z.string(), name: z.string() }),
  state: jobStateSchema,
  /** Whole-job progress: finished tasks plus the running task's share. */
  progressPercent: z.number().int().min(0).max(100),
  startedBy: z.string(),
  cancellable: z.boolean(),
  cancelRequestedAt: z.string().nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  endedAt: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  result: z.unknown(),
});

export const jobEventSchema = z.object({
  at: z.string(),
  task: z.string().nullable(),
  kind: z.string(),
  message: z.string(),
});

export const jobDetailSchema = jobSchema.extend({
  tasks: z.array(jobTaskSchema),
  events: z.array(jobEventSchema),
});

export const jobListSchema = z.object({ jobs: z.array(jobSchema) });

export const jobStartedSchema = z.object({
  jobId: z.string(),
  /** False when an unfinished job of the same kind for the same object was already running: its id. */
  created: z.boolean(),
});

/** Cancelling takes nothing (an empty object, as clients send for a POST). */
export const cancelJobBodySchema = z.object({}).strict();

export const refreshBodySchema = z
  .object({
    /** How long the vault waits for the management server to answer, and then for its inventory. */
    timeoutSeconds: z.number().int().min(1).max(3600).optional(),
  })
  .strict();

// ---- provider command channel ----

export const providerCommandSchema = z.object({
  commandId: z.string(),
  kind: z.string(),
  body: z.unknown(),
  createdAt: z.string(),
  /** Deliveries so far, this one included (more than 1: the previous answer may have been lost). */
  deliveries: z.number().int(),
});

export const commandListSchema = z.object({ commands: z.array(providerCommandSchema) });

export const commandResultBodySchema = z
  .object({
    ok: z.boolean(),
    result: z.unknown().optional(),
    error: z
      .object({
        code: z.string().regex(/^SECONDSITE_ERR_[A-Z_]{1,60}$/, 'a SECONDSITE_ERR_* code'),
        message: z.string().max(4000),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((b) => (b.ok ? b.error === undefined : b.error !== undefined), {
    message: 'ok: true takes a result and no error; ok: false needs error: { code, message }',
  });

export const commandResultAcceptedSchema = z.object({
  /** False when the command already had an outcome (this one was ignored). */
  accepted: z.boolean(),
  state: z.enum(['queued', 'delivered', 'done', 'failed']),
});

/** `inventory.sync`: the provider pushes its inventory and answers the version the vault should reach. */
export const inventorySyncResultSchema = z.object({ inventoryVersion: z.number().int().min(0) });

export type JobView = z.infer<typeof jobSchema>;
export type JobTaskView = z.infer<typeof jobTaskSchema>;
export type JobDetail = z.infer<typeof jobDetailSchema>;
export type JobEventView = z.infer<typeof jobEventSchema>;
export type ProviderCommand = z.infer<typeof providerCommandSchema>;
export type CommandResultBody = z.infer<typeof commandResultBodySchema>;

/**
 * Job history retention (docs/design/vault.md section 7.6): jobs, their provider commands and the
 * other queues' finished rows are deleted once they ended more than `historyDays` ago, on the
 * database's clock, in batches, never a job still running, queued or ended within the window.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Database } from '../../persistence/database.js';

export const DEFAULT_JOB_HISTORY_DAYS = 30;
export const MAX_JOB_HISTORY_DAYS = 3650;
/** How often a vault process prunes (from its monitor). */
export const JOB_HISTORY_PRUNE_INTERVAL_MS = 3_600_000;
/** Rows deleted per statement: a pass over a large backlog never holds long locks. */
export const JOB_HISTORY_BATCH_ROWS = 1000;

export interface PrunedJobHistory {
  /** Vault jobs deleted (with their tasks, events and queue rows). */
  readonly jobs: number;
  /** Provider commands deleted. */
  readonly providerCommands: number;
  /** Final rows of other queues (alert webhook deliveries) deleted. */
  readonly queueRows: number;
}

// After the jobs: a job deleted leaves its commands with job_id NULL (ON DELETE SET NULL).
const PRUNE_COMMANDS = `
DELETE FROM provider_commands WHERE command_id IN (
  SELECT c.command_id FROM provider_commands c
  LEFT JOIN vault_jobs v ON v.job_id = c.job_id
  WHERE c.completed_at < now() - make_interval(days => $1)
    AND (c.job_id IS NULL OR v.job_id IS NULL OR v.ended_at IS NOT NULL)
  LIMIT $2 FOR UPDATE OF c SKIP LOCKED)`;

const PRUNE_VAULT_JOBS = `
DELETE FROM vault_jobs WHERE job_id IN (
  SELECT v.job_id FROM vault_jobs v JOIN jobs j ON j.id = v.job_id
  WHERE j.state IN ('succeeded', 'failed')
    AND j.finished_at < now() - make_interval(days => $1)
    AND (v.ended_at IS NULL OR v.ended_at < now() - make_interval(days => $1))
  LIMIT $2 FOR UPDATE OF v, j SKIP LOCKED)
RETURNING job_id`;

const PRUNE_QUEUE_ROWS = `
DELETE FROM jobs WHERE id IN (
  SELECT j.id FROM jobs j
  WHERE j.state IN ('succeeded', 'failed')
    AND j.finished_at < now() - make_interval(days => $1)
    AND NOT EXISTS (SELECT 1 FROM vault_jobs v WHERE v.job_id = j.id)
  LIMIT $2 FOR UPDATE SKIP LOCKED)`;

/** Throws SECONDSITE_ERR_INVALID_ARGUMENT unless `days` is a whole number from 1 to 3650. */
export function checkJobHistoryDays(days: number): void {
  if (!Number.isInteger(days) || days < 1 || days > MAX_JOB_HISTORY_DAYS) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `a job history of ${days} days is not allowed; use a whole number of days from 1 to ${MAX_JOB_HISTORY_DAYS}`,
      { jobHistoryDays: days },
    );
  }
}

/** Deletes everything of the job history older than `historyDays`; returns the counts. */
export async function pruneJobHistory(db: Database, historyDays: number): Promise<PrunedJobHistory> {
  checkJobHistoryDays(historyDays);
  const params = [historyDays, JOB_HISTORY_BATCH_ROWS];
  const untilShort = async (batch: () => Promise<number>): Promise<number> => {
    let total = 0;
    for (;;) {
      const n = await batch();
      total += n;
      if (n < JOB_HISTORY_BATCH_ROWS) return total;
    }
  };
  const jobs = await untilShort(() =>
    db.transaction(async (tx) => {
      const gone = await tx.query<{ job_id: string }>(PRUNE_VAULT_JOBS, params);
      const ids = gone.rows.map((r) => r.job_id);
      if (ids.length > 0) await tx.query('DELETE FROM jobs WHERE id = ANY($1::uuid[])', [ids]);
      return ids.length;
    }),
  );
  const providerCommands = await untilShort(async () => (await db.query(PRUNE_COMMANDS, params)).rowCount);
  // the rows just deleted with their jobs are gone; what is left are the other queues' rows
  const queueRows = await untilShort(async () => (await db.query(PRUNE_QUEUE_ROWS, params)).rowCount);
  return { jobs, providerCommands, queueRows };
}

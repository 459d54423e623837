/**
 * The provider command channel (docs/design/vault.md section 7): the vault never dials a site, so a
 * job step that needs a management server to act records a command in `provider_commands`, the
 * server's provider long-polls for it and posts the outcome back.
 *
 * Promises, for any number of vault processes on one database:
 *   - A command is recorded before anything can deliver it, once per (job, step): a step run again
 *     (its vault process was killed after recording, or after the provider got it) finds the same
 *     command, with the same id and body, and waits for it; it never sends a second one.
 *   - Delivery hands each queued command to one poll (`FOR UPDATE SKIP LOCKED`); a command delivered
 *     but not answered within `redeliverSeconds` is delivered again (the answer may have been lost),
 *     and the provider's command loop runs it at most once per id. A poll whose client went away
 *     stops waiting and delivers nothing more.
 *   - The first outcome posted wins; a second post is answered `accepted: false` and changes nothing.
 *   - A command not answered within its timeout (counted on the database clock from when it was
 *     recorded, so a re-run does not restart it) is failed with SECONDSITE_ERR_TIMEOUT, and is then
 *     never delivered; a late answer is not accepted.
 * Latency: recording and answering NOTIFY `secondsite_provider_commands` (`q:<managementServerId>`,
 * `d:<commandId>`) at commit; every vault process LISTENs once and wakes its waiting long-polls and
 * steps. Notifications only wake: waiters also poll every `pollMs`.
 */
import { ERROR_REGISTRY, SecondsiteError, type ErrorCode } from '../../domain/errors.js';
import type { Database, Queryable } from '../../persistence/database.js';
import type { Listener } from '../../persistence/notification-listener.js';
import type { CommandResultBody, ProviderCommand } from '../../protocol/vault-api/jobs.schema.js';

export const COMMANDS_CHANNEL = 'secondsite_provider_commands';

export type CommandState = 'queued' | 'delivered' | 'done' | 'failed';

export interface CommandRecord {
  readonly commandId: string;
  readonly managementServerId: string;
  readonly managementServerName: string;
  readonly jobId: string | null;
  readonly step: string | null;
  readonly kind: string;
  readonly body: unknown;
  readonly state: CommandState;
  readonly timeoutSeconds: number;
  readonly deliveries: number;
  readonly result: unknown;
  readonly error: { readonly code: string; readonly message: string } | null;
  /** Seconds left before the timeout, on the database clock (negative once past). */
  readonly remainingSeconds: number;
}

export interface RecordCommandInput {
  readonly managementServerId: string;
  readonly jobId: string;
  /** Unique within the job: the step's name, or `step/key` for a step that sends several. */
  readonly step: string;
  readonly kind: string;
  readonly body: unknown;
  readonly timeoutSeconds: number;
}

interface Row {
  command_id: string;
  management_server_id: string;
  management_server_name: string;
  job_id: string | null;
  step: string | null;
  kind: string;
  body: unknown;
  state: CommandState;
  timeout_seconds: number;
  deliveries: number;
  result: unknown;
  error_code: string | null;
  error_message: string | null;
  remaining_seconds: number;
  created_at: Date;
}

const SELECT = `SELECT c.*, m.name AS management_server_name,
    extract(epoch FROM (c.created_at + make_interval(secs => c.timeout_seconds) - now()))::float8 AS remaining_seconds
  FROM provider_commands c JOIN management_servers m USING (management_server_id)`;

export interface CommandChannelOptions {
  /** A delivered command not answered for this long is delivered again; default 60 s. */
  readonly redeliverSeconds?: number;
  /** Waiters look again this often without a notification; default 1000 ms. */
  readonly pollMs?: number;
}

export class CommandChannel {
  private listener: Listener | null = null;
  private readonly waiters = new Map<string, Set<() => void>>();
  private closed = false;
  private readonly redeliverSeconds: number;
  private readonly pollMs: number;

  constructor(
    private readonly db: Database,
    options: CommandChannelOptions = {},
  ) {
    this.redeliverSeconds = options.redeliverSeconds ?? 60;
    this.pollMs = options.pollMs ?? 1000;
  }

  /** LISTENs for this process's waiters (polling alone still works if it cannot). */
  async start(): Promise<void> {
    this.listener = await this.db.listen(COMMANDS_CHANNEL, (payload) => this.wakeAll(payload));
  }

  /** Wakes every waiter (they return as if timed out) and stops listening. */
  async close(): Promise<void> {
    this.closed = true;
    for (const set of this.waiters.values()) for (const wake of set) wake();
    await this.listener?.close();
  }

  /** Records the command of (job, step), or returns the one already recorded for them. */
  async record(input: RecordCommandInput, via: Queryable = this.db): Promise<CommandRecord> {
    const inserted = await via.query<{ command_id: string }>(
      `INSERT INTO provider_commands (management_server_id, job_id, step, kind, body, timeout_seconds)
       VALUES ($1, $2, $3, $4, $5::jsonb, $6)
       ON CONFLICT (job_id, step) WHERE job_id IS NOT NULL DO NOTHING
       RETURNING command_id`,
      [
        input.managementServerId,
        input.jobId,
        input.step,
        input.kind,
        JSON.stringify(input.body ?? {}),
        input.timeoutSeconds,
      ],
    );
    if (inserted.rows[0])
      await via.query('SELECT pg_notify($1, $2)', [COMMANDS_CHANNEL, `q:${input.managementServerId}`]);
    const { rows } = await via.query<Row>(`${SELECT} WHERE c.job_id = $1 AND c.step = $2`, [
      input.jobId,
      input.step,
    ]);
    const row = rows[0];
    if (!row) throw new SecondsiteError('SECONDSITE_ERR_INTERNAL', `command of ${input.step} vanished`);
    return toRecord(row);
  }

  async get(commandId: string, via: Queryable = this.db): Promise<CommandRecord | null> {
    if (!isUuid(commandId)) return null;
    const { rows } = await via.query<Row>(`${SELECT} WHERE c.command_id = $1`, [commandId]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /**
   * Hands up to `limit` commands of the management server to this caller: queued ones, and delivered
   * ones not answered for `redeliverSeconds`. Waits up to `waitSeconds` for one to be queued.
   */
  async poll(
    managementServerId: string,
    waitSeconds: number,
    signal?: AbortSignal,
    limit = 20,
  ): Promise<ProviderCommand[]> {
    const deadline = Date.now() + waitSeconds * 1000;
    for (;;) {
      // a caller gone (its poll aborted) gets nothing: delivering to it would hold the command until
      // its redelivery
      if (signal?.aborted) return [];
      const got = await this.deliver(managementServerId, limit);
      const left = deadline - Date.now();
      if (got.length > 0 || left <= 0 || this.closed) return got;
      await this.wait(`q:${managementServerId}`, Math.min(left, this.pollMs), signal);
    }
  }

  private async deliver(managementServerId: string, limit: number): Promise<ProviderCommand[]> {
    const { rows } = await this.db.query<Row>(
      `WITH next AS (
         SELECT command_id FROM provider_commands
         WHERE management_server_id = $1
           AND (state = 'queued'
                OR (state = 'delivered' AND delivered_at < now() - make_interval(secs => $3)))
           AND created_at + make_interval(secs => timeout_seconds) > now()
         ORDER BY created_at
         LIMIT $2
         FOR UPDATE SKIP LOCKED)
       UPDATE provider_commands c SET state = 'delivered', delivered_at = now(), deliveries = c.deliveries + 1
       FROM next WHERE c.command_id = next.command_id
       RETURNING c.*, '' AS management_server_name, 0::float8 AS remaining_seconds`,
      [managementServerId, limit, this.redeliverSeconds],
    );
    return rows
      .sort((a, b) => a.created_at.getTime() - b.created_at.getTime())
      .map((r) => ({
        commandId: r.command_id,
        kind: r.kind,
        body: r.body,
        createdAt: r.created_at.toISOString(),
        deliveries: r.deliveries,
      }));
  }

  /** Records a provider's outcome; the first one wins. NOT_FOUND for another server's or no command. */
  async postResult(
    managementServerId: string,
    commandId: string,
    body: CommandResultBody,
  ): Promise<{ accepted: boolean; state: CommandState }> {
    const existing = await this.get(commandId);
    if (!existing || existing.managementServerId !== managementServerId) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `management server ${managementServerId} has no command ${commandId}`,
        { managementServerId, commandId },
      );
    }
    const ok = body.ok;
    const { rows } = await this.db.query<{ state: CommandState }>(
      `UPDATE provider_commands SET state = $3, result = $4::jsonb, error_code = $5, error_message = $6,
         completed_at = now()
       WHERE command_id = $1 AND management_server_id = $2 AND state IN ('queued', 'delivered')
       RETURNING state`,
      [
        commandId,
        managementServerId,
        ok ? 'done' : 'failed',
        ok ? JSON.stringify(body.result ?? null) : null,
        ok ? null : (body.error?.code ?? 'SECONDSITE_ERR_INTERNAL'),
        ok ? null : (body.error?.message ?? ''),
      ],
    );
    if (rows[0]) {
      await this.db.query('SELECT pg_notify($1, $2)', [COMMANDS_CHANNEL, `d:${commandId}`]);
      return { accepted: true, state: rows[0].state };
    }
    const now = await this.get(commandId);
    return { accepted: false, state: now?.state ?? existing.state };
  }

  /**
   * Waits until the command has an outcome and returns it (state done or failed), or fails it with
   * SECONDSITE_ERR_TIMEOUT once its timeout passed. `check` runs every tick and may throw (a cancel);
   * `signal` aborts the wait.
   */
  async outcome(
    commandId: string,
    signal: AbortSignal,
    check: () => Promise<void> = () => Promise.resolve(),
  ): Promise<CommandRecord> {
    for (;;) {
      signal.throwIfAborted();
      const c = await this.get(commandId);
      if (!c) throw new SecondsiteError('SECONDSITE_ERR_INTERNAL', `command ${commandId} vanished`);
      if (c.state === 'done' || c.state === 'failed') return c;
      if (c.remainingSeconds <= 0) {
        const message = `management server ${c.managementServerName} did not answer command ${c.kind} (${c.commandId}) within ${c.timeoutSeconds} s: is it running? ('secondsite manager serve' there, and 'secondsite vault management-server list' shows its last heartbeat)`;
        await this.db.query(
          `UPDATE provider_commands SET state = 'failed', error_code = 'SECONDSITE_ERR_TIMEOUT',
             error_message = $2, completed_at = now()
           WHERE command_id = $1 AND state IN ('queued', 'delivered')`,
          [commandId, message],
        );
        continue; // read what won: the timeout, or an answer that came just before it
      }
      await check();
      await this.wait(
        `d:${commandId}`,
        Math.min(this.pollMs, Math.max(50, c.remainingSeconds * 1000)),
        signal,
      );
    }
  }

  /** Resolves on a notification for `key`, after `ms`, on abort, or when the channel closes. */
  private wait(key: string, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let set = this.waiters.get(key);
      if (!set) this.waiters.set(key, (set = new Set()));
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        set.delete(done);
        if (set.size === 0) this.waiters.delete(key);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done);
      set.add(done);
    });
  }

  private wakeAll(key: string): void {
    for (const wake of [...(this.waiters.get(key) ?? [])]) wake();
  }
}

/** A provider's error code as a registered code (an unknown one becomes INTERNAL; the message keeps it). */
export function registeredCode(code: string): ErrorCode {
  return code in ERROR_REGISTRY ? (code as ErrorCode) : 'SECONDSITE_ERR_INTERNAL';
}

export function isUuid(text: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(text);
}

function toRecord(r: Row): CommandRecord {
  return {
    commandId: r.command_id,
    managementServerId: r.management_server_id,
    managementServerName: r.management_server_name,
    jobId: r.job_id,
    step: r.step,
    kind: r.kind,
    body: r.body,
    state: r.state,
    timeoutSeconds: r.timeout_seconds,
    deliveries: r.deliveries,
    result: r.result,
    error: r.error_code === null ? null : { code: r.error_code, message: r.error_message ?? '' },
    remainingSeconds: Number(r.remaining_seconds),
  };
}

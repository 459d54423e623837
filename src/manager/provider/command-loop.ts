/**
 * The provider's command loop (docs/design/vault.md section 7): long-polls the vault for this
 * management server's commands over the provider's outbound session, runs each with the handler
 * registered for its kind, and posts the outcome.
 *
 * At most once per command id: before a command runs, a row in `provider_command_runs` (manager
 * migration 0004) is made in its own committed statement; a command delivered again (the vault
 * redelivers one not answered in time, e.g. after a lost answer) finds the row and is not run again:
 * its kept outcome is posted again, or, while it still runs in this process, nothing is done. A
 * command whose run was cut short by a restart of this process is answered with
 * SECONDSITE_ERR_COMMAND_INTERRUPTED rather than run a second time. Outcomes the vault has not
 * accepted yet are posted again at the next start and after every failed post.
 * Errors (vault unreachable, refused polls) never stop the loop: it waits with backoff (1 s doubling
 * to 30 s) and polls again.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { SecondsiteError, isSecondsiteError } from '../../domain/errors.js';
import type { Logger } from '../../observability/logger.js';
import type { Database } from '../../persistence/database.js';
import type { CommandResultBody, ProviderCommand } from '../../protocol/vault-api/jobs.schema.js';
import type { VaultClient } from './vault-client.js';

export interface CommandHandlerContext {
  readonly commandId: string;
  /** Aborted when the management server stops. */
  readonly signal: AbortSignal;
}

/** Runs one command; returns its JSON result or throws (a SecondsiteError's code reaches the vault). */
export type CommandHandler = (body: unknown, ctx: CommandHandlerContext) => Promise<unknown>;

export interface CommandLoopOptions {
  /** Long-poll length (default 25 s, the vault's most). */
  readonly waitSeconds?: number;
  /** Backoff after an error: from 1 s, doubling to this (default 30 s). */
  readonly maxBackoffMs?: number;
}

interface RunRow {
  state: 'running' | 'done' | 'failed';
  result: unknown;
  error_code: string | null;
  error_message: string | null;
}

export class CommandLoop {
  private readonly handlers = new Map<string, CommandHandler>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly controller = new AbortController();
  private loop: Promise<void> | null = null;
  /** Commands run to an outcome by this process (for status and tests). */
  commandsRun = 0;
  lastError: string | null = null;

  constructor(
    private readonly client: VaultClient,
    private readonly managementServerId: string,
    private readonly db: Database,
    private readonly log: Logger,
    private readonly options: CommandLoopOptions = {},
  ) {}

  /** Registers the handler of a command kind (e.g. `inventory.sync`); one per kind. */
  register(kind: string, handler: CommandHandler): void {
    if (this.handlers.has(kind)) throw new Error(`a handler for command ${kind} is already registered`);
    this.handlers.set(kind, handler);
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops polling, aborts running handlers and waits for them. */
  async stop(): Promise<void> {
    this.controller.abort(new Error('the management server is stopping'));
    await this.loop;
    await Promise.all([...this.running.values()]);
  }

  private get base(): string {
    return `/v1/management-servers/${encodeURIComponent(this.managementServerId)}/commands`;
  }

  private async run(): Promise<void> {
    const signal = this.controller.signal;
    let backoffMs = 0;
    while (!signal.aborted) {
      try {
        if (backoffMs > 0) await sleep(backoffMs, undefined, { signal });
        await this.reportUnreported();
        const waitSeconds = this.options.waitSeconds ?? 25;
        const { commands } = await this.client.get<{ commands: ProviderCommand[] }>(
          `${this.base}?waitSeconds=${waitSeconds}`,
          signal,
        );
        if (this.lastError !== null) this.log.info('command poll reaches the vault again');
        this.lastError = null;
        backoffMs = 0;
        for (const c of commands) if (!this.running.has(c.commandId)) this.track(c);
      } catch (e) {
        if (signal.aborted) break;
        const message = (e as Error).message;
        if (message !== this.lastError) this.log.warn('command poll failed; retrying', { error: message });
        this.lastError = message;
        backoffMs = Math.min(this.options.maxBackoffMs ?? 30_000, Math.max(1000, backoffMs * 2));
      }
    }
  }

  private track(c: ProviderCommand): void {
    const p = this.handle(c)
      .catch((e: unknown) =>
        this.log.warn('command outcome not reported yet; retried', { commandId: c.commandId, error: e }),
      )
      .finally(() => this.running.delete(c.commandId));
    this.running.set(c.commandId, p);
  }

  private async handle(c: ProviderCommand): Promise<void> {
    const made = await this.db.query(
      `INSERT INTO provider_command_runs (command_id, kind) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
      [c.commandId, c.kind],
    );
    if (made.rowCount === 0) {
      // delivered again: never run twice; answer what we know
      const prior = await this.db.query<RunRow>('SELECT * FROM provider_command_runs WHERE command_id = $1', [
        c.commandId,
      ]);
      const row = prior.rows[0];
      if (row?.state === 'running') {
        await this.finish(c.commandId, {
          ok: false,
          error: {
            code: 'SECONDSITE_ERR_COMMAND_INTERRUPTED',
            message: `the management server stopped while it ran command ${c.kind} (${c.commandId}); it was not run again. Start the job again.`,
          },
        });
      }
      return this.report(c.commandId);
    }
    const handler = this.handlers.get(c.kind);
    let outcome: CommandResultBody;
    try {
      if (!handler) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `this management server has no handler for command ${c.kind}; upgrade it to the vault's version`,
        );
      }
      const result = await handler(c.body, { commandId: c.commandId, signal: this.controller.signal });
      outcome = { ok: true, result: result ?? null };
    } catch (e) {
      outcome = {
        ok: false,
        error: {
          code: isSecondsiteError(e) ? e.code : 'SECONDSITE_ERR_INTERNAL',
          message: e instanceof Error ? e.message : String(e),
        },
      };
    }
    if (this.controller.signal.aborted && !outcome.ok) return; // stopped mid-run: interrupted on the next delivery
    await this.finish(c.commandId, outcome);
    this.commandsRun++;
    await this.report(c.commandId);
  }

  private async finish(commandId: string, outcome: CommandResultBody): Promise<void> {
    await this.db.query(
      `UPDATE provider_command_runs SET state = $2, result = $3::jsonb, error_code = $4, error_message = $5,
         finished_at = now()
       WHERE command_id = $1 AND state = 'running'`,
      [
        commandId,
        outcome.ok ? 'done' : 'failed',
        outcome.ok ? JSON.stringify(outcome.result ?? null) : null,
        outcome.error?.code ?? null,
        outcome.error?.message ?? null,
      ],
    );
  }

  /** Posts a finished command's kept outcome; marks it reported once the vault answered. */
  private async report(commandId: string): Promise<void> {
    const r = await this.db.query<RunRow>('SELECT * FROM provider_command_runs WHERE command_id = $1', [
      commandId,
    ]);
    const row = r.rows[0];
    if (!row || row.state === 'running') return;
    const body: CommandResultBody =
      row.state === 'done'
        ? { ok: true, result: row.result }
        : {
            ok: false,
            error: { code: row.error_code ?? 'SECONDSITE_ERR_INTERNAL', message: row.error_message ?? '' },
          };
    try {
      await this.client.post(`${this.base}/${encodeURIComponent(commandId)}/result`, body);
    } catch (e) {
      // the vault no longer has it (deleted with its management server): nothing to report to
      if (!isSecondsiteError(e, 'SECONDSITE_ERR_NOT_FOUND')) throw e;
    }
    await this.db.query('UPDATE provider_command_runs SET reported = true WHERE command_id = $1', [
      commandId,
    ]);
  }

  private async reportUnreported(): Promise<void> {
    const r = await this.db.query<{ command_id: string }>(
      `SELECT command_id FROM provider_command_runs WHERE state <> 'running' AND NOT reported
       ORDER BY received_at LIMIT 100`,
    );
    for (const { command_id } of r.rows) if (!this.running.has(command_id)) await this.report(command_id);
  }
}

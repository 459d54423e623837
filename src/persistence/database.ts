/**
 * The database of one component (vault or management server): where it is, its schema, and a small
 * typed wrapper over a `pg.Pool`.
 *
 *   openDatabase({ databaseUrl, dataDir, component })
 *     databaseUrl given   -> that PostgreSQL, as is (any server; the URL names the database);
 *     no databaseUrl      -> the private embedded PostgreSQL in `<dataDir>/postgres`, database `secondsite`;
 *   then the component's migrations (migrations/migration-runner.ts), then the Database.
 * The caller decides where the URL comes from (the CLI reads DATABASE_URL); this module reads no
 * environment. `close()` ends the pool and stops the embedded server if there is one.
 *
 * Everything that runs SQL takes a `Queryable`: the Database itself (one pooled connection per
 * statement) or the transaction handle passed to `transaction(fn)`, so a caller can put its own writes
 * and, say, an enqueue or a job completion in one transaction.
 */
import { join } from 'node:path';
import pg from 'pg';
import { SecondsiteError } from '../domain/errors.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded/embedded-postgres.js';
import { MIGRATIONS } from './migrations/index.js';
import { applyMigrations, type MigrationReport } from './migrations/migration-runner.js';
import type { Component, Migration } from './migrations/migration.js';
import { listenForNotifications, type Listener } from './notification-listener.js';
import { isRetryableTransactionError } from './postgres-errors.js';

export type { Component } from './migrations/migration.js';

export interface QueryResult<R> {
  readonly rows: R[];
  readonly rowCount: number;
}

/** Something that runs SQL: a Database or a transaction handle. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<QueryResult<R>>;
}

export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

export interface TransactionOptions {
  /** Default 'read committed' (PostgreSQL's default). */
  readonly isolation?: IsolationLevel;
  /**
   * Runs of `fn` in all, when PostgreSQL aborts the transaction with a serialization failure or a
   * deadlock (SQLSTATE 40001, 40P01); default 5. `fn` must therefore be safe to run again: no side
   * effects outside the transaction.
   */
  readonly maxAttempts?: number;
}

export interface Database extends Queryable {
  readonly component: Component;
  /** The connection URL with its password hidden, for logs and messages. */
  readonly displayUrl: string;
  /** The full connection URL (with password): give it only to processes of the same trust. */
  readonly url: string;
  /** The embedded server, when no databaseUrl was given. */
  readonly embedded: EmbeddedPostgres | null;
  /** What the migration step found and did at open. */
  readonly migrations: MigrationReport;
  /** Runs `fn` in a transaction; commits if it resolves, rolls back if it throws (see the options). */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * LISTENs on `channel` over a dedicated connection (notification-listener.ts): for prompt wake-ups
   * only, notifications can be missed. Closed by `close()` too.
   */
  listen(channel: string, onNotify: (payload: string) => void): Promise<Listener>;
  /** Ends the pool and the listeners, and stops the embedded server. Idempotent. */
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** Any PostgreSQL URL; when absent, the embedded server in `<dataDir>/postgres`. */
  readonly databaseUrl?: string | undefined;
  /** The component's data directory. */
  readonly dataDir: string;
  readonly component: Component;
  /** Pool size (default 10). */
  readonly maxConnections?: number;
  /** Tests only: another migration list than the component's own. */
  readonly migrations?: readonly Migration[];
  /** Tests only: see EmbeddedPostgresOptions.unsafeFastForTests. */
  readonly unsafeFastForTests?: boolean;
}

/** The name of the database the embedded server holds for its component. */
export const EMBEDDED_DATABASE_NAME = 'secondsite';

/** Opens (and migrates) the component's database; see the file comment. */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  let embedded: EmbeddedPostgres | null = null;
  let url: string;
  if (options.databaseUrl) {
    url = options.databaseUrl;
  } else {
    embedded = await startEmbeddedPostgres({
      dataDir: join(options.dataDir, 'postgres'),
      unsafeFastForTests: options.unsafeFastForTests ?? false,
    });
    try {
      url = await ensureDatabase(embedded.url, EMBEDDED_DATABASE_NAME);
    } catch (e) {
      await embedded.stop();
      throw e;
    }
  }
  const displayUrl = hidePassword(url);
  const pool = new pg.Pool({ connectionString: url, max: options.maxConnections ?? 10 });
  // An idle connection that breaks (server restart) must not crash the process; the next query fails.
  pool.on('error', () => {});
  try {
    await pool.query('SELECT 1');
  } catch (e) {
    await pool.end().catch(() => {});
    await embedded?.stop();
    throw new SecondsiteError(
      'SECONDSITE_ERR_DATABASE_UNAVAILABLE',
      `cannot connect to the ${options.component} database at ${displayUrl}: ${(e as Error).message}. Check that the server runs and the URL (user, password, database) is right.`,
      { component: options.component, url: displayUrl },
      { cause: e },
    );
  }
  let report: MigrationReport;
  try {
    report = await applyMigrations(
      pool,
      options.component,
      options.migrations ?? MIGRATIONS[options.component],
    );
  } catch (e) {
    await pool.end().catch(() => {});
    await embedded?.stop();
    throw e;
  }
  return new PooledDatabase(pool, options.component, url, displayUrl, embedded, report);
}

class PooledDatabase implements Database {
  private closed: Promise<void> | null = null;
  private readonly listeners = new Set<Listener>();

  constructor(
    private readonly pool: pg.Pool,
    readonly component: Component,
    readonly url: string,
    readonly displayUrl: string,
    readonly embedded: EmbeddedPostgres | null,
    readonly migrations: MigrationReport,
  ) {}

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params: readonly unknown[] = [],
  ): Promise<QueryResult<R>> {
    const result = await this.pool.query<R>(sql, params as unknown[]);
    return { rows: result.rows, rowCount: result.rowCount ?? 0 };
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    const maxAttempts = options.maxAttempts ?? 5;
    const isolation = options.isolation ?? 'read committed';
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      let broken: Error | undefined;
      // a checked-out client has no pool listener: without this, a connection PostgreSQL drops
      // mid-transaction (restart, failover, a forced DROP DATABASE) is an uncaught 'error' event
      const onError = (e: Error): void => {
        broken = e;
      };
      client.on('error', onError);
      try {
        await client.query(`BEGIN ISOLATION LEVEL ${isolation.toUpperCase()}`);
        const tx: Queryable = {
          query: async <R extends pg.QueryResultRow>(sql: string, params: readonly unknown[] = []) => {
            const result = await client.query<R>(sql, params as unknown[]);
            return { rows: result.rows, rowCount: result.rowCount ?? 0 };
          },
        };
        const value = await fn(tx);
        await client.query('COMMIT');
        return value;
      } catch (e) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackError) {
          broken = rollbackError as Error; // the connection is unusable: drop it from the pool
        }
        if (attempt >= maxAttempts || !isRetryableTransactionError(e)) throw e;
        await sleep(Math.random() * 20 * 2 ** attempt);
      } finally {
        client.off('error', onError);
        client.release(broken);
      }
    }
  }

  async listen(channel: string, onNotify: (payload: string) => void): Promise<Listener> {
    const listener = await listenForNotifications(this.url, channel, onNotify);
    this.listeners.add(listener);
    return {
      close: async () => {
        this.listeners.delete(listener);
        await listener.close();
      },
    };
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      await Promise.all([...this.listeners].map((l) => l.close()));
      await this.pool.end();
      await this.embedded?.stop();
    })();
    return this.closed;
  }
}

/** Creates database `name` on the server of `serverUrl` if missing; returns the URL of that database. */
export async function ensureDatabase(serverUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: serverUrl });
  client.on('error', () => {});
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) {
      try {
        await client.query(`CREATE DATABASE ${quoteIdentifier(name)}`);
      } catch (e) {
        // Two processes creating it at once: the loser sees it exist (42P04) or a unique violation.
        const code = (e as { code?: string }).code;
        if (code !== '42P04' && code !== '23505') throw e;
      }
    }
  } finally {
    await client.end();
  }
  return withDatabase(serverUrl, name);
}

/** `url` with its database (path) replaced by `name`. */
export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(name)}`;
  return u.toString();
}

/** `url` with the password replaced by `***`. */
export function hidePassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable database URL)';
  }
}

/** A double-quoted SQL identifier. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

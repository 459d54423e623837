/**
 * Brings a database to the schema this code knows, or refuses to.
 *
 *   1. take the migrations advisory lock (one per database, session level): processes starting at
 *      the same time queue here, and each sees the work of the one before it;
 *   2. create `schema_migrations` if missing (the runner's own bookkeeping, never migrated);
 *   3. check the history: rows of another component -> SCHEMA_MISMATCH (each component needs its own
 *      database); a version newer than the newest known -> SCHEMA_TOO_NEW; an applied version whose
 *      name or checksum differs from ours, or a gap -> SCHEMA_MISMATCH;
 *   4. apply each pending migration in its own transaction together with its bookkeeping row;
 *   5. release the lock.
 * Nothing is applied when a check fails. A migration that fails rolls back alone; the ones before it
 * stay applied, and the process does not start.
 */
import type pg from 'pg';
import { SecondsiteError } from '../../domain/errors.js';
import { migrationChecksum, type Component, type Migration } from './migration.js';

/** pg_advisory_lock key of the migrations lock ("secsite" folded into 63 bits). */
export const MIGRATIONS_LOCK_KEY = '6878470551219105268';

export interface MigrationReport {
  readonly component: Component;
  /** Newest applied version before this run (0 for an empty database). */
  readonly fromVersion: number;
  readonly toVersion: number;
  /** Versions this run applied, in order. */
  readonly applied: readonly number[];
}

interface AppliedRow {
  component: string;
  version: number;
  name: string;
  checksum: string;
}

/** Checks that `migrations` are numbered 1..n in order with kebab-case names; throws INTERNAL if not. */
export function validateMigrationList(component: Component, migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1 || !/^[a-z0-9]+(-[a-z0-9]+)*$/.test(m.name)) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INTERNAL',
        `the ${component} migration list is malformed at position ${i + 1} (version ${m.version}, name '${m.name}'): versions must be 1, 2, 3... and names kebab-case.`,
        { component },
      );
    }
  });
}

/** Applies the pending migrations of `component` (see the file comment). */
export async function applyMigrations(
  pool: pg.Pool,
  component: Component,
  migrations: readonly Migration[],
): Promise<MigrationReport> {
  validateMigrationList(component, migrations);
  const client = await pool.connect();
  let released = false;
  try {
    await client.query('SELECT pg_advisory_lock($1::bigint)', [MIGRATIONS_LOCK_KEY]);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        component  text NOT NULL,
        version    integer NOT NULL,
        name       text NOT NULL,
        checksum   text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (component, version))`);
      const { rows } = await client.query<AppliedRow>(
        'SELECT component, version, name, checksum FROM schema_migrations ORDER BY component, version',
      );
      const fromVersion = checkHistory(component, migrations, rows);
      const applied: number[] = [];
      for (const migration of migrations.slice(fromVersion)) {
        await applyOne(client, component, migration);
        applied.push(migration.version);
      }
      return { component, fromVersion, toVersion: migrations.length, applied };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATIONS_LOCK_KEY]);
    }
  } catch (e) {
    // A broken connection must not go back to the pool (it may still hold the lock).
    client.release(e instanceof Error ? e : true);
    released = true;
    throw e;
  } finally {
    if (!released) client.release();
  }
}

/** Returns the newest applied version after checking the history against `migrations`. */
function checkHistory(component: Component, migrations: readonly Migration[], rows: AppliedRow[]): number {
  const foreign = rows.find((r) => r.component !== component);
  if (foreign) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_SCHEMA_MISMATCH',
      `this database holds the schema of the ${foreign.component}, not of the ${component}: each component needs its own database. Give the ${component} another database (another DATABASE_URL, or no DATABASE_URL for an embedded one).`,
      { component, foundComponent: foreign.component },
    );
  }
  const newest = rows.at(-1)?.version ?? 0;
  const known = migrations.length;
  if (newest > known) {
    const newer = rows.filter((r) => r.version > known).map((r) => `${r.version} (${r.name})`);
    throw new SecondsiteError(
      'SECONDSITE_ERR_SCHEMA_TOO_NEW',
      `the ${component} database schema is at version ${newest}, and this secondsite knows versions up to ${known}: a newer secondsite applied ${newer.join(', ')}. Run that newer version (or later), or restore a database backup taken before the upgrade; starting would risk misreading the data.`,
      { component, databaseVersion: newest, knownVersion: known, newerMigrations: newer },
    );
  }
  rows.forEach((row, i) => {
    const ours = migrations[row.version - 1];
    if (row.version !== i + 1 || !ours) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_SCHEMA_MISMATCH',
        `the ${component} migration history has a gap: version ${row.version} is applied but version ${i + 1} is not. The schema was changed outside secondsite; restore a backup.`,
        { component, version: row.version },
      );
    }
    const checksum = migrationChecksum(ours);
    if (row.name !== ours.name || row.checksum !== checksum) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_SCHEMA_MISMATCH',
        `${component} migration ${row.version} was applied as '${row.name}' (checksum ${row.checksum.slice(0, 12)}) but this secondsite ships it as '${ours.name}' (checksum ${checksum.slice(0, 12)}): the migration was edited after it was applied, or the database comes from a different build. Run the build that applied it, or restore a backup; never edit an applied migration, add a new one.`,
        {
          component,
          version: row.version,
          appliedName: row.name,
          appliedChecksum: row.checksum,
          expectedName: ours.name,
          expectedChecksum: checksum,
        },
      );
    }
  });
  return newest;
}

async function applyOne(client: pg.PoolClient, component: Component, migration: Migration): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(migration.sql);
    await client.query(
      'INSERT INTO schema_migrations (component, version, name, checksum) VALUES ($1, $2, $3, $4)',
      [component, migration.version, migration.name, migrationChecksum(migration)],
    );
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw new SecondsiteError(
      'SECONDSITE_ERR_INTERNAL',
      `${component} migration ${migration.version} (${migration.name}) failed and was rolled back: ${(e as Error).message}`,
      { component, version: migration.version },
      { cause: e },
    );
  }
}

/**
 * A numbered schema migration, and the component it belongs to.
 *
 * Migrations are TypeScript modules that export their SQL as a string (not .sql files found on disk),
 * so the list is static and type-checked, ships with the code however it is packaged, and a test can
 * compare it with the folder (migrations.test.ts). Rules (docs/design/persistence.md):
 *   - one folder per component, files `NNNN-<kebab-name>.migration.ts`, versions 1, 2, 3... without gaps;
 *   - an applied migration is never edited: its checksum (sha256 of `sql`) is recorded when applied and
 *     a process refuses to start when it differs; fix forward with a new migration;
 *   - each migration runs in one transaction with its bookkeeping row.
 */
import { createHash } from 'node:crypto';

/** The processes that own a database. Each has its own schema history (and its own database). */
export type Component = 'vault' | 'manager';

export interface Migration {
  /** 1, 2, 3...: the NNNN of the file name. */
  readonly version: number;
  /** kebab-case, the rest of the file name. */
  readonly name: string;
  /** One or more SQL statements, run in one transaction. */
  readonly sql: string;
}

/** sha256 (hex) of the migration's SQL, as recorded in schema_migrations. */
export function migrationChecksum(migration: Migration): string {
  return createHash('sha256').update(migration.sql, 'utf8').digest('hex');
}

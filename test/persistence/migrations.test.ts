// Migrations against a real PostgreSQL (the test server: DATABASE_URL or an embedded one): applied in
// order and once, idempotent, applied once by two processes opening at the same moment, and a start
// refused against a newer schema, an edited migration, or another component's database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { openDatabase, type Database } from '../../src/persistence/database.js';
import { MIGRATIONS } from '../../src/persistence/migrations/index.js';
import { migrationChecksum, type Migration } from '../../src/persistence/migrations/migration.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { spawnTsScript, registerChildCleanup } from '../../src/testing/process/child-process.js';

registerChildCleanup();
const server = useTestPostgres();
const DATA_DIR = '/nonexistent'; // never used: every open below has a databaseUrl

const m1: Migration = {
  version: 1,
  name: 'create-counter',
  sql: 'CREATE TABLE counter (n integer NOT NULL);',
};
const m2: Migration = {
  version: 2,
  name: 'count-once',
  // Slow on purpose, so concurrent openers overlap; without the lock one of them would apply it too.
  sql: 'SELECT pg_sleep(0.3); INSERT INTO counter VALUES (1);',
};

async function open(
  url: string,
  migrations?: readonly Migration[],
  component: 'vault' | 'manager' = 'vault',
): Promise<Database> {
  return openDatabase({
    databaseUrl: url,
    dataDir: DATA_DIR,
    component,
    ...(migrations ? { migrations } : {}),
  });
}

async function history(
  db: Database,
): Promise<{ component: string; version: number; name: string; checksum: string }[]> {
  const { rows } = await db.query<{ component: string; version: number; name: string; checksum: string }>(
    'SELECT component, version, name, checksum FROM schema_migrations ORDER BY version',
  );
  return rows;
}

test('the vault and manager migrations apply in order on an empty database, and again is a no-op', async (t) => {
  for (const component of ['vault', 'manager'] as const) {
    const url = await server.freshDatabase(t);
    const first = await open(url, undefined, component);
    const known = MIGRATIONS[component];
    assert.deepEqual(first.migrations, {
      component,
      fromVersion: 0,
      toVersion: known.length,
      applied: known.map((m) => m.version),
    });
    assert.deepEqual(
      await history(first),
      known.map((m) => ({ component, version: m.version, name: m.name, checksum: migrationChecksum(m) })),
    );
    const tables = await first.query<{ t: string }>(
      "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    );
    const names = tables.rows.map((r) => r.t);
    for (const base of ['jobs', 'leases', 'schema_migrations'])
      assert.ok(names.includes(base), `${component}: ${base}`);
    await first.close();
    const again = await open(url, undefined, component);
    assert.deepEqual(again.migrations.applied, []);
    assert.equal(again.migrations.fromVersion, known.length);
    assert.equal((await history(again)).length, known.length);
    await again.close();
  }
});

test('two processes opening one empty database at once apply each migration once', async (t) => {
  const url = await server.freshDatabase(t);
  // In this process: two pools at once, with a slow migration that would run twice without the lock.
  const [a, b] = await Promise.all([open(url, [m1, m2]), open(url, [m1, m2])]);
  const applied = [a.migrations.applied, b.migrations.applied].sort((x, y) => y.length - x.length);
  assert.deepEqual(applied, [[1, 2], []]);
  assert.deepEqual((await a.query('SELECT n FROM counter')).rows, [{ n: 1 }]);
  await Promise.all([a.close(), b.close()]);

  // And two real processes on another empty database with the vault's own migrations.
  const url2 = await server.freshDatabase(t);
  const children = [0, 1].map((i) =>
    spawnTsScript('test/persistence/fixtures/db-owner.ts', ['/nonexistent', `p${i}`], {
      env: { DATABASE_URL: url2 },
    }),
  );
  const readies = await Promise.all(children.map((c) => c.waitForReady(30_000)));
  assert.ok(readies.every((r) => r.embedded === false && r.schemaVersion === MIGRATIONS.vault.length));
  const check = new pg.Client({ connectionString: url2 });
  await check.connect();
  const rows = (
    await check.query(
      'SELECT version, count(*)::int AS n FROM schema_migrations GROUP BY version ORDER BY version',
    )
  ).rows;
  const notes = (await check.query('SELECT note FROM notes ORDER BY note')).rows;
  await check.end();
  assert.deepEqual(
    rows,
    MIGRATIONS.vault.map((m) => ({ version: m.version, n: 1 })),
  );
  assert.deepEqual(notes, [{ note: 'p0' }, { note: 'p1' }]);
  await Promise.all(children.map((c) => c.stop()));
});

test('a database migrated by a newer version is refused with SCHEMA_TOO_NEW, untouched', async (t) => {
  const url = await server.freshDatabase(t);
  await (await open(url, [m1, m2])).close();
  await assert.rejects(open(url, [m1]), (e: Error & { code?: string; details?: Record<string, unknown> }) => {
    assert.equal(e.code, 'SECONDSITE_ERR_SCHEMA_TOO_NEW');
    assert.match(e.message, /schema is at version 2/);
    assert.match(e.message, /knows versions up to 1/);
    assert.match(e.message, /2 \(count-once\)/);
    assert.deepEqual(e.details?.newerMigrations, ['2 (count-once)']);
    return true;
  });
  const db = await open(url, [m1, m2]); // the newer version still starts
  assert.equal((await history(db)).length, 2);
  await db.close();
});

test('an applied migration whose SQL or name changed is refused with SCHEMA_MISMATCH', async (t) => {
  const url = await server.freshDatabase(t);
  await (await open(url, [m1])).close();
  const edited: Migration = { ...m1, sql: `${m1.sql}\n-- edited` };
  await assert.rejects(open(url, [edited, m2]), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'SECONDSITE_ERR_SCHEMA_MISMATCH');
    assert.match(e.message, /migration 1 was applied as 'create-counter' \(checksum [0-9a-f]{12}\)/);
    assert.match(e.message, /never edit an applied migration/);
    return true;
  });
  await assert.rejects(open(url, [{ ...m1, name: 'renamed' }]), { code: 'SECONDSITE_ERR_SCHEMA_MISMATCH' });
  // Nothing was applied by the refused starts.
  const db = await open(url, [m1]);
  assert.deepEqual(
    (await history(db)).map((r) => r.version),
    [1],
  );
  await db.close();
});

test("a component refuses another component's database", async (t) => {
  const url = await server.freshDatabase(t);
  await (await open(url, undefined, 'vault')).close();
  await assert.rejects(open(url, undefined, 'manager'), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'SECONDSITE_ERR_SCHEMA_MISMATCH');
    assert.match(e.message, /holds the schema of the vault, not of the manager/);
    return true;
  });
});

test('a failing migration rolls back alone and the start fails', async (t) => {
  const url = await server.freshDatabase(t);
  const bad: Migration = {
    version: 2,
    name: 'bad',
    sql: 'INSERT INTO counter VALUES (1); SELECT no_such_function();',
  };
  await assert.rejects(open(url, [m1, bad]), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'SECONDSITE_ERR_INTERNAL');
    assert.match(e.message, /migration 2 \(bad\) failed and was rolled back/);
    return true;
  });
  const db = await open(url, [m1]);
  assert.deepEqual((await db.query('SELECT * FROM counter')).rows, []);
  assert.deepEqual(
    (await history(db)).map((r) => r.version),
    [1],
  );
  await db.close();
});

// The embedded PostgreSQL behind openDatabase (no databaseUrl): first start initializes a cluster in
// <dataDir>/postgres, later starts reuse it; a process that owned it killed with SIGKILL (alone, or
// with its whole process group so postmaster.pid is left behind) does not stop a fresh start on the
// same folder; and with DATABASE_URL nothing is started.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../src/persistence/database.js';
import { startEmbeddedPostgres } from '../../src/persistence/embedded/embedded-postgres.js';
import { MIGRATIONS } from '../../src/persistence/migrations/index.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { registerChildCleanup, spawnTsScript } from '../../src/testing/process/child-process.js';

registerChildCleanup();
const server = useTestPostgres();
const OWNER = 'test/persistence/fixtures/db-owner.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

test('no DATABASE_URL: a private PostgreSQL initialized in <dataDir>/postgres, reused by the next start', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'secondsite-embedded-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));

  const first = await openDatabase({ dataDir, component: 'manager' });
  assert.ok(first.embedded);
  assert.equal(first.embedded.initialized, true);
  assert.match(first.url, /^postgresql:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/secondsite$/);
  assert.doesNotMatch(first.displayUrl, new RegExp(decodeURIComponent(new URL(first.url).password)));
  assert.equal(first.migrations.toVersion, MIGRATIONS.manager.length);
  const passwordFile = join(dataDir, 'postgres', 'superuser.password');
  assert.equal(statSync(passwordFile).mode & 0o777, 0o600);
  assert.equal(statSync(join(dataDir, 'postgres', 'cluster')).mode & 0o777, 0o700);
  await first.query('CREATE TABLE kept (v text)');
  await first.query("INSERT INTO kept VALUES ('across restarts')");
  const firstPid = first.embedded.pid;
  t.diagnostic(`first start (initdb + start): ${first.embedded.startMs} ms`);
  await first.close();
  assert.equal(alive(firstPid), false, 'close() stops the server');
  assert.equal(existsSync(join(dataDir, 'postgres', 'cluster', 'postmaster.pid')), false);

  const second = await openDatabase({ dataDir, component: 'manager' });
  assert.equal(second.embedded?.initialized, false);
  t.diagnostic(`restart of an existing cluster: ${second.embedded?.startMs} ms`);
  assert.deepEqual(second.migrations.applied, []);
  assert.deepEqual((await second.query('SELECT v FROM kept')).rows, [{ v: 'across restarts' }]);
  await second.close();
});

test('after kill -9 of the owning process, alone or with its process group, a fresh start works', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'secondsite-embedded-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const pidFile = join(dataDir, 'postgres', 'cluster', 'postmaster.pid');

  // 1. SIGKILL to the node process only: its PostgreSQL gets the parent-death signal and shuts down.
  const a = spawnTsScript(OWNER, [dataDir, 'from-a'], { env: { DATABASE_URL: '' } });
  const readyA = await a.waitForReady(60_000);
  assert.equal(readyA.embedded, true);
  const postmasterA = readyA.postmasterPid as number;
  assert.ok(alive(postmasterA));
  process.kill(a.pid, 'SIGKILL');
  await a.exited;
  assert.ok(await waitGone(postmasterA, 15_000), 'the orphaned PostgreSQL stops by itself');

  // 2. SIGKILL to the whole group (owner and PostgreSQL at once): postmaster.pid stays behind.
  const b = spawnTsScript(OWNER, [dataDir, 'from-b'], { env: { DATABASE_URL: '' } });
  const readyB = await b.waitForReady(60_000);
  // While b lives, the folder is its own: another start is refused, naming the postmaster.
  await assert.rejects(
    startEmbeddedPostgres({ dataDir: join(dataDir, 'postgres'), startTimeoutMs: 500 }),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, 'SECONDSITE_ERR_DATABASE_UNAVAILABLE');
      assert.match(e.message, new RegExp(`in use by postmaster pid ${readyB.postmasterPid as number}`));
      return true;
    },
  );
  await b.kill9();
  assert.ok(await waitGone(readyB.postmasterPid as number, 5000));
  assert.ok(existsSync(pidFile), 'a killed postmaster leaves its pid file');

  // 3. A fresh start on the same folder recovers and has every committed row.
  const db = await openDatabase({ dataDir, component: 'vault', unsafeFastForTests: true });
  assert.equal(db.embedded?.initialized, false);
  assert.deepEqual((await db.query('SELECT note FROM notes ORDER BY note')).rows, [
    { note: 'from-a' },
    { note: 'from-b' },
  ]);
  await db.close();
});

test('with DATABASE_URL the given server is used as is and nothing is started', async (t) => {
  const url = await server.freshDatabase(t);
  const dataDir = await mkdtemp(join(tmpdir(), 'secondsite-external-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const child = spawnTsScript(OWNER, [dataDir, 'external'], { env: { DATABASE_URL: url } });
  const ready = await child.waitForReady(30_000);
  assert.equal(ready.embedded, false);
  assert.equal(ready.schemaVersion, MIGRATIONS.vault.length);
  assert.equal(existsSync(join(dataDir, 'postgres')), false);
  await child.stop();
  const db = await openDatabase({ databaseUrl: url, dataDir, component: 'vault' });
  assert.equal(db.embedded, null);
  assert.deepEqual((await db.query('SELECT note FROM notes')).rows, [{ note: 'external' }]);
  await db.close();
});

test('an unreachable DATABASE_URL is refused with DATABASE_UNAVAILABLE and a hidden password', async () => {
  await assert.rejects(
    openDatabase({
      databaseUrl: 'postgresql://someone:s3cret@127.0.0.1:1/nowhere',
      dataDir: '/nonexistent',
      component: 'vault',
    }),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, 'SECONDSITE_ERR_DATABASE_UNAVAILABLE');
      assert.match(e.message, /postgresql:\/\/someone:\*\*\*@127\.0\.0\.1:1\/nowhere/);
      assert.doesNotMatch(e.message, /s3cret/);
      return true;
    },
  );
});

/**
 * PostgreSQL for tests: one server per test process, one fresh database per test.
 *
 *   const pg = useTestPostgres();            // top level of the test file: registers after(stop)
 *   test('...', async (t) => {
 *     const url = await pg.freshDatabase(t);  // CREATE DATABASE secondsite_test_<random>; dropped after t
 *     const db = await openDatabase({ databaseUrl: url, dataDir, component: 'vault' });
 *   });
 *
 * The server is DATABASE_URL when set (the databases are created there, so the user needs CREATEDB),
 * else an embedded PostgreSQL started on first use in a temp folder (a copy of a template cluster made
 * once per machine: template-cluster.ts), with durability traded for speed (unsafeFastForTests),
 * stopped and removed after the file's tests.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, type TestContext } from 'node:test';
import pg from 'pg';
import { quoteIdentifier, withDatabase } from '../../persistence/database.js';
import {
  startEmbeddedPostgres,
  type EmbeddedPostgres,
} from '../../persistence/embedded/embedded-postgres.js';
import { copyTemplateCluster } from './template-cluster.js';

export interface TestPostgres {
  /** Superuser (or DATABASE_URL's) URL of the server; starts the embedded server on first call. */
  serverUrl(): Promise<string>;
  /** Creates an empty database and returns its URL; dropped after `t` (or by the caller's `drop`). */
  freshDatabase(t?: Pick<TestContext, 'after'>): Promise<string>;
  /** Drops a database made by freshDatabase (forcing out its connections). */
  dropDatabase(url: string): Promise<void>;
  /** The embedded server, once started (null with DATABASE_URL). */
  readonly embedded: EmbeddedPostgres | null;
}

/** Call once at the top level of a test file. */
export function useTestPostgres(): TestPostgres {
  let starting: Promise<string> | null = null;
  let embedded: EmbeddedPostgres | null = null;
  let dir: string | null = null;
  const made = new Set<string>();

  const serverUrl = (): Promise<string> => {
    starting ??= (async () => {
      const external = process.env.DATABASE_URL;
      if (external) return external;
      dir = await mkdtemp(join(tmpdir(), 'secondsite-test-pg-'));
      await copyTemplateCluster(join(dir, 'postgres'));
      embedded = await startEmbeddedPostgres({
        dataDir: join(dir, 'postgres'),
        unsafeFastForTests: true,
        settings: { max_connections: '300' },
      });
      return embedded.url;
    })();
    return starting;
  };

  const admin = async <T>(fn: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: await serverUrl() });
    client.on('error', () => {});
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  };

  const dropDatabase = async (url: string): Promise<void> => {
    const name = decodeURIComponent(new URL(url).pathname.slice(1));
    made.delete(url);
    await admin((c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`));
  };

  after(async () => {
    if (starting) {
      for (const url of [...made]) await dropDatabase(url).catch(() => {});
    }
    await embedded?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  return {
    serverUrl,
    async freshDatabase(t) {
      const name = `secondsite_test_${randomBytes(6).toString('hex')}`;
      await admin((c) => c.query(`CREATE DATABASE ${quoteIdentifier(name)}`));
      const url = withDatabase(await serverUrl(), name);
      made.add(url);
      t?.after(() => dropDatabase(url));
      return url;
    },
    dropDatabase,
    get embedded() {
      return embedded;
    },
  };
}

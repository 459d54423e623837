/**
 * A private PostgreSQL server in a folder, from the npm-shipped binaries (see postgres-binaries.ts).
 *
 * Layout of `dataDir` (owned by this process; the cluster by the PostgreSQL user, see postgres-user.ts):
 *   cluster/              PGDATA. Created by initdb into `cluster.initdb/` and renamed when complete,
 *                         so a start cut short during initdb starts over instead of using half a cluster.
 *   superuser.password    the random password of the `postgres` superuser, mode 0600.
 *   postgres.log          the server's log (appended across starts).
 *
 * The server listens on 127.0.0.1 only, on a free port chosen at each start (a start that loses a
 * race for the port tries another one), with SCRAM password authentication and no Unix socket. It runs
 * in our process group with a parent-death signal, so it stops when its owner exits or is killed;
 * `stop()` shuts it down cleanly (fast shutdown) and a process 'exit' hook does the same as a last
 * resort. A `postmaster.pid` left by a killed owner is handled: a dead pid is PostgreSQL's own stale
 * lock recovery; a live postmaster on this cluster (an owner just killed, still shutting down) is
 * waited for; a pid reused by an unrelated process is removed.
 *
 * One owner per data directory: a second process that wants the same database uses the URL of the
 * first (DATABASE_URL), not the same folder.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { SecondsiteError } from '../../domain/errors.js';
import { findPostgresBinaries, type PostgresBinaries } from './postgres-binaries.js';
import {
  ensureReachable,
  executableBinaries,
  giveFile,
  makeOwnedDir,
  resolvePostgresRunAs,
  type PostgresRunAs,
} from './postgres-user.js';

export interface EmbeddedPostgresOptions {
  /** The folder that holds the cluster, its password file and its log (created if missing). */
  readonly dataDir: string;
  /**
   * Trade durability for speed (fsync and full_page_writes off; initdb --no-sync, and 1 MB WAL
   * segments so the cluster is small to copy): for test clusters only. A kill of any process keeps
   * committed data (the OS has it); a crash of the machine may not.
   */
  readonly unsafeFastForTests?: boolean;
  /** Extra server settings (`-c name=value`), e.g. `{ max_connections: '200' }`. */
  readonly settings?: Readonly<Record<string, string>>;
  /** How long to wait for the server to accept connections (default 60 s). */
  readonly startTimeoutMs?: number;
}

export interface EmbeddedPostgres {
  /** Superuser URL of the `postgres` database, e.g. postgresql://postgres:...@127.0.0.1:41234/postgres */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** The postmaster's pid. */
  readonly pid: number;
  /** Milliseconds this start took, including initdb on a first start. */
  readonly startMs: number;
  /** Whether this start ran initdb. */
  readonly initialized: boolean;
  /** Fast shutdown; waits for the server to exit. Idempotent. */
  stop(): Promise<void>;
}

const SUPERUSER = 'postgres';
const PORT_ATTEMPTS = 5;
const live = new Set<ChildProcess>();

/** Starts (initializing on first use) the private PostgreSQL in `dataDir`; resolves once it accepts connections. */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const started = performance.now();
  const { dataDir } = options;
  const runAs = resolvePostgresRunAs();
  const bins = executableBinaries(await findPostgresBinaries(), runAs);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  ensureReachable(dataDir, runAs);

  const clusterDir = join(dataDir, 'cluster');
  const passwordFile = join(dataDir, 'superuser.password');
  let initialized = false;
  if (!existsSync(join(clusterDir, 'PG_VERSION'))) {
    await initCluster(bins, runAs, dataDir, clusterDir, passwordFile, options);
    initialized = true;
  }
  if (!existsSync(passwordFile)) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_DATABASE_UNAVAILABLE',
      `the embedded PostgreSQL cluster in ${clusterDir} exists but its password file ${passwordFile} is missing; restore it from a backup, or move the cluster away to start with an empty database.`,
      { dataDir },
    );
  }
  const password = readFileSync(passwordFile, 'utf8').trim();
  checkClusterVersion(clusterDir, bins);
  // A killed owner's server needs well under a second to shut down; longer means a live owner.
  await clearStalePostmaster(clusterDir, Math.min(options.startTimeoutMs ?? 60_000, 10_000));

  const logPath = join(dataDir, 'postgres.log');
  let lastError: unknown = null;
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const port = await freePort();
    const url = `postgresql://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
    const logOffset = existsSync(logPath) ? statSync(logPath).size : 0;
    const child = spawnPostgres(bins, runAs, clusterDir, port, logPath, options);
    try {
      await waitUntilAccepting(child, url, options.startTimeoutMs ?? 60_000);
    } catch (e) {
      await stopChild(child);
      const log = readLogTail(logPath, logOffset);
      if (/could not bind|Address already in use/i.test(log)) {
        lastError = e;
        continue; // another process took the port between our probe and the bind: try another one
      }
      throw new SecondsiteError(
        'SECONDSITE_ERR_DATABASE_UNAVAILABLE',
        `the embedded PostgreSQL in ${clusterDir} did not start: ${(e as Error).message}. Its log (${logPath}) says:\n${log}`,
        { dataDir, logPath },
        { cause: e },
      );
    }
    return {
      url,
      port,
      dataDir,
      pid: child.pid as number,
      startMs: Math.round(performance.now() - started),
      initialized,
      stop: () => stopChild(child),
    };
  }
  throw new SecondsiteError(
    'SECONDSITE_ERR_DATABASE_UNAVAILABLE',
    `the embedded PostgreSQL in ${clusterDir} could not bind a free port on 127.0.0.1 in ${PORT_ATTEMPTS} attempts; see ${logPath}.`,
    { dataDir, logPath },
    { cause: lastError },
  );
}

async function initCluster(
  bins: PostgresBinaries,
  runAs: PostgresRunAs,
  dataDir: string,
  clusterDir: string,
  passwordFile: string,
  options: EmbeddedPostgresOptions,
): Promise<void> {
  const building = `${clusterDir}.initdb`;
  rmSync(building, { recursive: true, force: true });
  if (!existsSync(passwordFile)) {
    writeFileSync(passwordFile, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  }
  // initdb reads the password from a file the PostgreSQL user can read: a copy, removed after.
  const pwCopy = join(dataDir, 'initdb-password.tmp');
  writeFileSync(pwCopy, readFileSync(passwordFile, 'utf8').trim(), { mode: 0o600 });
  giveFile(pwCopy, runAs);
  makeOwnedDir(building, runAs);
  const args = [
    bins.initdb,
    '-D',
    building,
    '-U',
    SUPERUSER,
    `--pwfile=${pwCopy}`,
    '--auth=scram-sha-256',
    '--encoding=UTF8',
    '--locale=C',
    '--no-instructions',
    ...(options.unsafeFastForTests ? ['--no-sync', '--wal-segsize=1'] : []),
  ];
  try {
    const { code, output } = await runToExit(runAs, args);
    if (code !== 0) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_DATABASE_UNAVAILABLE',
        `initdb of the embedded PostgreSQL in ${building} failed (exit ${code}):\n${output.slice(-4000)}`,
        { dataDir },
      );
    }
  } finally {
    rmSync(pwCopy, { force: true });
  }
  renameSync(building, clusterDir);
}

function checkClusterVersion(clusterDir: string, bins: PostgresBinaries): void {
  const clusterMajor = Number(readFileSync(join(clusterDir, 'PG_VERSION'), 'utf8').trim());
  if (clusterMajor !== bins.majorVersion) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_DATABASE_UNAVAILABLE',
      `the embedded PostgreSQL cluster in ${clusterDir} was made by PostgreSQL ${clusterMajor} and this secondsite ships PostgreSQL ${bins.majorVersion}; dump it with the old version (pg_dump) and restore into a new cluster, or point DATABASE_URL at a server of version ${clusterMajor}.`,
      { clusterDir, clusterMajor, shippedMajor: bins.majorVersion },
    );
  }
}

/** See the file comment: what a postmaster.pid left behind means, and what to do about it. */
async function clearStalePostmaster(clusterDir: string, timeoutMs: number): Promise<void> {
  const pidFile = join(clusterDir, 'postmaster.pid');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!existsSync(pidFile)) return;
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return; // PostgreSQL removes it itself
    if (!isPostmasterOf(pid, clusterDir)) {
      rmSync(pidFile, { force: true }); // the pid was reused by an unrelated process
      return;
    }
    if (Date.now() > deadline) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_DATABASE_UNAVAILABLE',
        `the embedded PostgreSQL in ${clusterDir} is in use by postmaster pid ${pid} (another secondsite process owns this data directory). Stop that process, or give this one DATABASE_URL to share its database.`,
        { clusterDir, pid },
      );
    }
    await sleep(100); // an owner just killed: its server is shutting down (parent-death signal)
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isPostmasterOf(pid: number, clusterDir: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return (argv[0] ?? '').endsWith('postgres') && argv.includes(clusterDir);
  } catch {
    return false; // exited meanwhile, or no /proc: PostgreSQL's own check decides
  }
}

function spawnPostgres(
  bins: PostgresBinaries,
  runAs: PostgresRunAs,
  clusterDir: string,
  port: number,
  logPath: string,
  options: EmbeddedPostgresOptions,
): ChildProcess {
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    // Not synchronous_commit=off: that loses commits when the server process dies, not just the machine.
    ...(options.unsafeFastForTests ? { fsync: 'off', full_page_writes: 'off' } : {}),
    ...options.settings,
  };
  const args = [bins.postgres, '-D', clusterDir, '-p', String(port)];
  for (const [name, value] of Object.entries(settings)) args.push('-c', `${name}=${value}`);
  const logFd = openSync(logPath, 'a', 0o600);
  const [cmd, ...wrapperArgs] = runAs.wrapper;
  const child = spawn(cmd as string, [...wrapperArgs, ...args], {
    cwd: '/',
    env: postgresEnv(),
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  child.on('error', () => live.delete(child)); // spawn failures: reported below, not thrown later
  if (child.pid === undefined) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_DATABASE_UNAVAILABLE',
      `cannot start the embedded PostgreSQL: '${cmd}' could not be run (it comes with util-linux; install it, or set DATABASE_URL).`,
      { command: cmd },
    );
  }
  live.add(child);
  child.on('exit', () => live.delete(child));
  return child;
}

async function waitUntilAccepting(child: ChildProcess, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the server exited (code ${child.exitCode}, signal ${child.signalCode})`);
    }
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.end();
      return;
    } catch (e) {
      await client.end().catch(() => {});
      const code = (e as { code?: string }).code;
      if (code === '28P01' || code === '28000') {
        throw new Error(`the server refused the superuser password from superuser.password (${code})`);
      }
      if (Date.now() > deadline)
        throw new Error(`not accepting connections after ${timeoutMs} ms: ${String(e)}`);
    }
    await sleep(25);
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGINT'); // fast shutdown: abort transactions, checkpoint, remove postmaster.pid
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), 30_000)));
  const outcome = await Promise.race([exited, timeout]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

function runToExit(runAs: PostgresRunAs, args: string[]): Promise<{ code: number | null; output: string }> {
  const [cmd, ...wrapperArgs] = runAs.wrapper;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd as string, [...wrapperArgs, ...args], {
      cwd: '/',
      env: postgresEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

function postgresEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C', TZ: 'UTC' };
}

function readLogTail(logPath: string, fromOffset: number): string {
  try {
    const text = readFileSync(logPath, 'utf8').slice(fromOffset);
    return text.slice(-4000);
  } catch {
    return '(no log)';
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

process.on('exit', () => {
  for (const child of live) child.kill('SIGINT');
});

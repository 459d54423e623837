/**
 * Which operating-system user runs the embedded PostgreSQL, and how it reaches its files.
 *
 * PostgreSQL refuses to run as root. When secondsite itself runs as a normal user, initdb and postgres
 * run as that user. When it runs as root (CI containers, the lab), they run as the unprivileged system
 * user `secondsite-pg` (override: SECONDSITE_POSTGRES_USER), which scripts/setup.sh creates; secondsite
 * never creates users by itself. Every process is started through `setpriv`, which drops to that user
 * and sets a parent-death signal (SIGINT: PostgreSQL's fast shutdown), so a cluster never outlives the
 * process that started it, even after a kill -9.
 *
 * As root, the cluster directory is chowned to that user, and the data directory and its parent get
 * the search bit for others (o+x: traverse, not list) so the user can reach the cluster; any other
 * ancestor must already be searchable. If the npm binaries themselves are not reachable by that user
 * (a checkout under /root), they are copied once into a root-owned folder under the temp directory.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { SecondsiteError } from '../../domain/errors.js';
import type { PostgresBinaries } from './postgres-binaries.js';

export const DEFAULT_POSTGRES_SYSTEM_USER = 'secondsite-pg';

export interface PostgresRunAs {
  /** Null when PostgreSQL runs as the current (non-root) user. */
  readonly user: { readonly name: string; readonly uid: number; readonly gid: number } | null;
  /** `setpriv` and its arguments, to put before the PostgreSQL binary and its arguments. */
  readonly wrapper: readonly string[];
}

/** The identity PostgreSQL runs as: the current user, or the system user when we are root. */
export function resolvePostgresRunAs(): PostgresRunAs {
  const pdeath = ['--pdeathsig', 'SIGINT'];
  if (process.getuid?.() !== 0) return { user: null, wrapper: ['setpriv', ...pdeath] };
  const name = process.env.SECONDSITE_POSTGRES_USER ?? DEFAULT_POSTGRES_SYSTEM_USER;
  const entry = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  const fields = entry.status === 0 ? entry.stdout.trim().split(':') : [];
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  if (fields.length < 4 || !Number.isInteger(uid) || !Number.isInteger(gid) || uid === 0) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_DATABASE_UNAVAILABLE',
      `secondsite runs as root and PostgreSQL refuses to: it needs the unprivileged system user '${name}', which does not exist (or is root). Create it with \`useradd --system --user-group --no-create-home --shell /usr/sbin/nologin ${name}\` (scripts/setup.sh does), run secondsite as a normal user, or set DATABASE_URL.`,
      { user: name },
    );
  }
  return {
    user: { name, uid, gid },
    wrapper: ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', ...pdeath],
  };
}

/** Creates `dir` (mode 0700) owned by the PostgreSQL user. */
export function makeOwnedDir(dir: string, runAs: PostgresRunAs): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (runAs.user) chownSync(dir, runAs.user.uid, runAs.user.gid);
  chmodSync(dir, 0o700);
}

/** Makes a file readable by the PostgreSQL user only (and root). */
export function giveFile(path: string, runAs: PostgresRunAs): void {
  if (runAs.user) chownSync(path, runAs.user.uid, runAs.user.gid);
  chmodSync(path, 0o600);
}

/**
 * Makes sure the PostgreSQL user can traverse down to `dataDir`: adds o+x to `dataDir` and its parent
 * if they lack it; throws if another ancestor is not searchable. A no-op when not root.
 */
export function ensureReachable(dataDir: string, runAs: PostgresRunAs): void {
  const user = runAs.user;
  if (!user) return;
  const mayChange = new Set([dataDir, dirname(dataDir)]);
  for (let dir = dataDir; ; dir = dirname(dir)) {
    const st = statSync(dir);
    const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) {
      if (mayChange.has(dir)) chmodSync(dir, (st.mode & 0o7777) | 0o001);
      else {
        throw new SecondsiteError(
          'SECONDSITE_ERR_DATABASE_UNAVAILABLE',
          `the PostgreSQL user '${user.name}' cannot reach ${dataDir}: ${dir} is not searchable by it (mode ${(st.mode & 0o777).toString(8)}). Put the data directory under a path others may traverse, or run \`chmod o+x ${dir}\`.`,
          { dataDir, dir },
        );
      }
    }
    if (dir === dirname(dir)) break;
  }
}

/**
 * Binaries the PostgreSQL user can execute: the npm ones, or (root, npm folder not reachable by that
 * user) a root-owned copy under the temp directory, made once.
 */
export function executableBinaries(bins: PostgresBinaries, runAs: PostgresRunAs): PostgresBinaries {
  if (!runAs.user || canRun(bins.postgres, runAs)) return bins;
  const copyDir = join(tmpdir(), `secondsite-postgres-${bins.packageVersion}-${process.arch}`);
  if (!existsSync(copyDir)) {
    const partial = `${copyDir}.partial-${process.pid}`;
    rmSync(partial, { recursive: true, force: true });
    cpSync(bins.nativeDir, partial, { recursive: true, verbatimSymlinks: true });
    chmodSync(partial, 0o755);
    try {
      renameSync(partial, copyDir);
    } catch {
      rmSync(partial, { recursive: true, force: true }); // another process won the race
    }
  }
  const st = statSync(copyDir);
  if (st.uid !== 0 || (st.mode & 0o022) !== 0) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_DATABASE_UNAVAILABLE',
      `${copyDir} (a copy of the PostgreSQL binaries) is not owned by root or is writable by others; remove it and start again.`,
      { copyDir },
    );
  }
  const copy: PostgresBinaries = {
    nativeDir: copyDir,
    initdb: join(copyDir, 'bin', 'initdb'),
    postgres: join(copyDir, 'bin', 'postgres'),
    majorVersion: bins.majorVersion,
    packageVersion: bins.packageVersion,
  };
  if (!canRun(copy.postgres, runAs)) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_DATABASE_UNAVAILABLE',
      `the PostgreSQL user '${runAs.user.name}' cannot run ${copy.postgres}; check that ${tmpdir()} is searchable by it.`,
      { copyDir },
    );
  }
  return copy;
}

function canRun(binary: string, runAs: PostgresRunAs): boolean {
  const [cmd, ...args] = runAs.wrapper;
  const result = spawnSync(cmd as string, [...args, binary, '--version'], { encoding: 'utf8', cwd: '/' });
  return result.status === 0 && result.stdout.startsWith('postgres');
}

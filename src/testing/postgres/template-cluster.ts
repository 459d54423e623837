/**
 * A stopped, initialized test cluster made once per machine (per PostgreSQL package version and user)
 * and copied for each test process, so a test file pays a copy (~0.2 s) instead of an initdb (1-5 s).
 *
 *   $TMPDIR/secondsite-test-pg-template-<package version>-uid<uid>/postgres/
 *     cluster/, superuser.password       as startEmbeddedPostgres lays them out
 *
 * Made by starting and stopping a fresh embedded server in a private folder renamed into place when
 * complete (two test processes racing both build, one rename wins). Copied with `cp -a`, which keeps
 * the owner when we are root (the cluster belongs to the PostgreSQL user). A template not owned by us,
 * writable by others, or incomplete is not used. Test clusters only: its password is shared by every
 * copy.
 */
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findPostgresBinaries } from '../../persistence/embedded/postgres-binaries.js';
import { startEmbeddedPostgres } from '../../persistence/embedded/embedded-postgres.js';

/** Copies the template into `targetDir` (which must not exist), making the template first if needed. */
export async function copyTemplateCluster(targetDir: string): Promise<void> {
  const template = await ensureTemplate();
  await run('cp', ['-a', join(template, 'postgres'), targetDir]);
}

async function ensureTemplate(): Promise<string> {
  const { packageVersion } = await findPostgresBinaries();
  const dir = join(tmpdir(), `secondsite-test-pg-template-${packageVersion}-uid${process.getuid?.() ?? 0}`);
  if (usable(dir)) return dir;
  await rm(dir, { recursive: true, force: true });
  const building = await mkdtemp(`${dir}.building-`);
  try {
    const server = await startEmbeddedPostgres({
      dataDir: join(building, 'postgres'),
      unsafeFastForTests: true,
    });
    await server.stop();
    await rename(building, dir);
  } catch (e) {
    await rm(building, { recursive: true, force: true });
    if (!usable(dir)) throw e; // unless another process won the race
  }
  return dir;
}

function usable(dir: string): boolean {
  if (!existsSync(join(dir, 'postgres', 'cluster', 'PG_VERSION'))) return false;
  if (!existsSync(join(dir, 'postgres', 'superuser.password'))) return false;
  if (existsSync(join(dir, 'postgres', 'cluster', 'postmaster.pid'))) return false;
  const st = statSync(dir);
  return st.uid === (process.getuid?.() ?? st.uid) && (st.mode & 0o022) === 0;
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} failed (${code}): ${stderr}`)),
    );
  });
}

/**
 * An inventory refresh as a user runs it, all real processes: `vault serve`, `manager register` and
 * `manager serve` (its command loop answers `inventory.sync`), then `vault management-server refresh
 * NAME --wait` succeeds (exit 0); with the management server killed, the same command fails after its
 * timeout (exit 1) saying the server did not answer and asking whether it runs.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { registerChildCleanup, spawnSecondsite } from '../../src/testing/process/child-process.js';

registerChildCleanup();
const server = useTestPostgres();
const bin = new URL('../../bin/secondsite.mjs', import.meta.url).pathname;
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function cli(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, [bin, ...args], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

test('vault management-server refresh --wait: Succeeded with a running manager, Failed (exit 1) with a killed one', async (t) => {
  const vaultDb = await server.freshDatabase();
  const managerDb = await server.freshDatabase();
  const dir = await mkdtemp(join(tmpdir(), 'ss-jobcli-'));
  dirs.push(dir);
  await chmod(dir, 0o711);
  const vaultDir = join(dir, 'vault');
  const env = { SECONDSITE_VAULT_DIR: vaultDir };
  const vault = spawnSecondsite(['vault', 'serve', '--data-dir', vaultDir, '--listen', '127.0.0.1:0'], {
    env: { DATABASE_URL: vaultDb },
  });
  let manager: ReturnType<typeof spawnSecondsite> | null = null;
  t.after(async () => {
    await manager?.stop();
    await vault.stop();
    await server.dropDatabase(vaultDb);
    await server.dropDatabase(managerDb);
  });
  await vault.waitForReady(60_000);
  const key = await cli(env, 'vault', 'key', 'create', '--out', join(dir, 'a.key'));
  assert.equal(key.code, 0, key.stderr);
  const reg = await cli(
    env,
    'manager',
    'register',
    '--key',
    join(dir, 'a.key'),
    '--name',
    'site-a',
    '--data-dir',
    join(dir, 'manager'),
  );
  assert.equal(reg.code, 0, reg.stderr);
  manager = spawnSecondsite(
    ['manager', 'serve', '--data-dir', join(dir, 'manager'), '--enrol-listen', '127.0.0.1:0'],
    { env: { DATABASE_URL: managerDb } },
  );
  await manager.waitForReady(60_000);

  const ok = await cli(env, 'vault', 'management-server', 'refresh', 'site-a', '--wait', '--timeout', '30');
  assert.equal(ok.code, 0, `${ok.stdout}\n${ok.stderr}`);
  assert.match(ok.stdout, /job [0-9a-f-]+ Succeeded: Refresh the inventory of management server site-a/);

  await manager.kill9();
  const down = await cli(env, 'vault', 'management-server', 'refresh', 'site-a', '--wait', '--timeout', '2');
  assert.equal(down.code, 1, `${down.stdout}\n${down.stderr}`);
  assert.match(
    down.stdout,
    /Failed: SECONDSITE_ERR_TIMEOUT: management server site-a did not answer command inventory\.sync \([0-9a-f-]+\) within 2 s: is it running\?/,
  );
  const list = await cli(env, 'vault', 'job', 'list');
  assert.match(list.stdout, /inventory-refresh\s+Failed/);
  assert.match(list.stdout, /inventory-refresh\s+Succeeded/);
});

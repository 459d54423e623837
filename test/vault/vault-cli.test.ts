/**
 * The vault and management server as a user runs them, through the CLI in real processes: `vault
 * serve` (its own embedded PostgreSQL), a registration key, `manager register` and `manager serve`
 * (heartbeats), users and tokens, and a lost heartbeat when the management server is killed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  registerChildCleanup,
  spawnSecondsite,
  type ChildHandle,
} from '../../src/testing/process/child-process.js';

registerChildCleanup();
const bin = new URL('../../bin/secondsite.mjs', import.meta.url).pathname;
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function cli(
  env: Record<string, string>,
  ...args: string[]
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function ready(child: ChildHandle): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    const line = child.stdoutLines.find((l) => l.startsWith('{"ready":true'));
    if (line) return JSON.parse(line) as Record<string, unknown>;
    if (child.exit) throw new Error(`${child.name} exited: ${child.stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${child.name} did not get ready: ${child.stderr}`);
}

test('vault serve, key create, manager register/serve, users and tokens, lost heartbeat', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ss-vaultcli-'));
  dirs.push(dir);
  await chmod(dir, 0o711); // as root, PostgreSQL runs as its own user, who must traverse to its folder
  const vaultDir = join(dir, 'vault');
  const env: Record<string, string> = { SECONDSITE_VAULT_DIR: vaultDir };
  delete process.env['DATABASE_URL']; // the user path: an embedded PostgreSQL per process
  const vault = spawnSecondsite(
    ['vault', 'serve', '--data-dir', vaultDir, '--listen', '127.0.0.1:0', '--heartbeat-interval', '1'],
    {
      env,
    },
  );
  const v = await ready(vault);
  assert.match(String(v['url']), /^https:\/\/localhost:\d+$/);

  const key = cli(env, 'vault', 'key', 'create', '--out', join(dir, 'east.key'), '--output', 'json');
  assert.equal(key.status, 0, key.stderr);
  const reg = cli(
    env,
    'manager',
    'register',
    '--key',
    join(dir, 'east.key'),
    '--name',
    'vmm-east',
    '--data-dir',
    join(dir, 'east'),
  );
  assert.equal(reg.status, 0, reg.stderr);
  assert.match(reg.stdout, /registered vmm-east \(ms_[0-9a-f]+\) node node-1/);
  const again = cli(
    env,
    'manager',
    'register',
    '--key',
    join(dir, 'east.key'),
    '--name',
    'vmm-x',
    '--data-dir',
    join(dir, 'x'),
  );
  assert.equal(again.status, 2);
  assert.match(again.stderr, /SECONDSITE_ERR_KEY_USED.*single-use/);

  const manager = spawnSecondsite(
    ['manager', 'serve', '--data-dir', join(dir, 'east'), '--enrol-listen', '127.0.0.1:0'],
    { env },
  );
  await ready(manager);
  const connected = async (want: string): Promise<void> => {
    const deadline = Date.now() + 30_000;
    let last = '';
    while (Date.now() < deadline) {
      const r = cli(env, 'vault', 'management-server', 'list', '--output', 'json');
      last = r.stdout + r.stderr;
      const list =
        r.status === 0 ? (JSON.parse(r.stdout) as Array<{ name: string; connectionState: string }>) : [];
      if (list.some((m) => m.name === 'vmm-east' && m.connectionState === want)) return;
      await new Promise((res) => setTimeout(res, 300));
    }
    assert.fail(`vmm-east never became ${want}: ${last}`);
  };
  await connected('connected');

  const user = cli(env, 'vault', 'user', 'create', 'ann', '--role', 'Reader');
  assert.equal(user.status, 0, user.stderr);
  const token = cli(env, 'vault', 'token', 'create', '--user', 'ann', '--output', 'json');
  const annToken = (JSON.parse(token.stdout) as { token: string }).token;
  const asAnn = { SECONDSITE_VAULT_DIR: vaultDir, SECONDSITE_TOKEN: annToken };
  assert.equal(cli(asAnn, 'vault', 'management-server', 'list').status, 0, 'a Reader reads');
  const denied = cli(asAnn, 'vault', 'key', 'create', '--out', join(dir, 'no.key'));
  assert.equal(denied.status, 2);
  assert.match(denied.stderr, /SECONDSITE_ERR_FORBIDDEN.*\(Reader\) may not registration-key.write/);
  const noToken = cli({ SECONDSITE_VAULT_DIR: join(dir, 'nowhere') }, 'vault', 'user', 'list');
  assert.notEqual(noToken.status, 0);
  assert.match(noToken.stderr, /vault\.json/);

  manager.signalGroup('SIGKILL');
  await manager.exited;
  await connected('disconnected');
  const alerts = cli(env, 'vault', 'alert', 'list');
  assert.match(alerts.stdout, /Critical\s+management-server-heartbeat-lost/);
  vault.signalGroup('SIGTERM');
  assert.equal((await vault.exited).code, 0);
});

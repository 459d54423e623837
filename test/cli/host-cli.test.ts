import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';

const bin = new URL('../../bin/secondsite.mjs', import.meta.url).pathname;
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('host init, serve, status (text and JSON), clean stop on SIGTERM', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ss-hostcli-'));
  dirs.push(dir);
  assert.equal(cli('host', 'init', '--host-id', 'host-a', '--state-dir', dir).status, 0);
  // Idempotent with the same id, refused with another.
  assert.equal(cli('host', 'init', '--host-id', 'host-a', '--state-dir', dir).status, 0);
  const clash = cli('host', 'init', '--host-id', 'host-b', '--state-dir', dir);
  assert.equal(clash.status, 2);
  assert.match(clash.stderr, /SECONDSITE_ERR_ALREADY_EXISTS.*host-a/);

  const agent = spawn(process.execPath, [bin, 'host', 'serve', '--state-dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      createInterface({ input: agent.stdout }).once('line', (line) =>
        resolve(JSON.parse(line) as Record<string, unknown>),
      );
      agent.once('exit', (code) => reject(new Error(`agent exited ${code}`)));
    });
    assert.equal(ready['ready'], true);
    assert.equal(ready['hostId'], 'host-a');

    const text = cli('host', 'status', '--state-dir', dir);
    assert.equal(text.status, 0);
    assert.match(text.stdout, /host host-a: up/);
    const json = cli('host', 'status', '--state-dir', dir, '--output', 'json');
    assert.equal((JSON.parse(json.stdout) as { hostId: string }).hostId, 'host-a');

    // Disks: create (idempotent), served over NBD to a real client, resized, deleted.
    const created = cli(
      'host',
      'disk',
      'create',
      'vm1-d0',
      '--size',
      '64M',
      '--state-dir',
      dir,
      '--output',
      'json',
    );
    assert.equal(created.status, 0, created.stderr);
    const disk = JSON.parse(created.stdout) as { nbdUri: string; sizeBytes: number };
    assert.equal(disk.sizeBytes, 64 * 1024 * 1024);
    assert.equal(cli('host', 'disk', 'create', 'vm1-d0', '--size', '64M', '--state-dir', dir).status, 0);
    const conflict = cli('host', 'disk', 'create', 'vm1-d0', '--size', '32M', '--state-dir', dir);
    assert.match(conflict.stderr, /SECONDSITE_ERR_ALREADY_EXISTS/);
    const io = spawnSync(
      'qemu-io',
      ['-f', 'raw', '-c', 'write -P 0xab 4096 1M', '-c', 'read -P 0xab 4096 1M', disk.nbdUri],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(io.status, 0, io.stderr);
    assert.doesNotMatch(io.stdout, /Pattern verification failed/);
    assert.match(cli('host', 'status', '--state-dir', dir).stdout, /vm1-d0\s+vm1-d0\s+64\.0 MiB/);
    const bad = cli('host', 'disk', 'create', '../etc', '--size', '1M', '--state-dir', dir);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /SECONDSITE_ERR_INVALID_ARGUMENT.*disk id/);
    assert.equal(cli('host', 'disk', 'resize', 'vm1-d0', '--size', '128M', '--state-dir', dir).status, 0);
    const shrink = cli('host', 'disk', 'resize', 'vm1-d0', '--size', '1M', '--state-dir', dir);
    assert.equal(shrink.status, 2);
    const reread = spawnSync('qemu-io', ['-f', 'raw', '-c', 'read -P 0xab 4096 1M', disk.nbdUri], {
      encoding: 'utf8',
    });
    assert.doesNotMatch(reread.stdout, /Pattern verification failed/, 'data survives a resize');
    assert.match(cli('host', 'disk', 'list', '--state-dir', dir).stdout, /128\.0 MiB/);
    assert.match(cli('host', 'disk', 'delete', 'vm1-d0', '--state-dir', dir).stdout, /deleted/);
    assert.match(cli('host', 'disk', 'delete', 'vm1-d0', '--state-dir', dir).stdout, /did not exist/);
  } finally {
    agent.kill('SIGTERM');
    await new Promise((r) => agent.once('exit', r));
  }
  assert.equal(existsSync(join(dir, 'agent.sock')), false, 'socket removed on clean stop');
  const down = cli('host', 'status', '--state-dir', dir);
  assert.equal(down.status, 2);
  assert.match(down.stderr, /not running/);
});

test('help and bad input say what to do', () => {
  const top = cli('--help');
  assert.equal(top.status, 0);
  assert.match(top.stdout, /host/);
  const help = cli('host', 'init', '--help');
  assert.match(help.stdout, /--host-id NAME/);
  const missing = cli('host', 'init', '--state-dir', '/tmp/x-never');
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /--host-id is required/);
  const unknown = cli('host', 'status', '--bogus');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /bogus/);
  const badId = cli('host', 'init', '--host-id', 'Bad_Id', '--state-dir', '/tmp/x-never');
  assert.match(badId.stderr, /hostId/);
});

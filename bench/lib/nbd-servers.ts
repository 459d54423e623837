/**
 * The NBD servers the write-path suite compares, each started on a fresh sparse raw file of its own
 * (`truncate -s 2G`) and stopped by PID. Command lines are those of peers-and-limits.md section 2.6:
 *   qemu-nbd:  qemu-nbd -f raw -t -k SOCK FILE            -> nbd+unix:///?socket=SOCK
 *   nbdkit:    nbdkit -f -U SOCK file FILE                -> nbd+unix:///?socket=SOCK
 *   ours:      secondsite host init/serve + host disk create d0 --size 2G
 *                                                        -> nbd+unix:///d0?socket=STATE/nbd.sock
 *   ours-bare: bench/servers/bare-nbd.server.ts (NbdServer + FileBlockDevice [+ ChangeTrackingFilter])
 */
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CALLGRIND_NODE_FLAGS, callgrindArgs } from './callgrind.js';
import { readyLine, runCommand, startProcess, waitForNbd, type RunningProcess } from './processes.js';

export interface StartedServer {
  readonly contender: string;
  readonly uri: string;
  readonly pid: number;
  /** Command lines used, for the report. */
  readonly commands: readonly string[];
  stop(): Promise<void>;
}

export interface ServerSpec {
  readonly contender: string;
  /** Human description for the docs/report. */
  readonly description: string;
  start(workDir: string, sizeBytes: number, repoRoot: string): Promise<StartedServer>;
}

export async function createSparseFile(path: string, sizeBytes: number): Promise<void> {
  await rm(path, { force: true });
  const fh = await open(path, 'w', 0o600);
  try {
    await fh.truncate(sizeBytes);
  } finally {
    await fh.close();
  }
}

function stopper(procs: RunningProcess[], workDir: string): () => Promise<void> {
  return async () => {
    for (const p of procs) await p.stop();
    await rm(workDir, { recursive: true, force: true });
  };
}

async function startPlain(
  contender: string,
  workDir: string,
  sizeBytes: number,
  command: string,
  argsFor: (sock: string, file: string) => string[],
): Promise<StartedServer> {
  await mkdir(workDir, { recursive: true });
  const file = join(workDir, 'disk.raw');
  const sock = join(workDir, 's.sock');
  await createSparseFile(file, sizeBytes);
  const args = argsFor(sock, file);
  const p = startProcess(contender, command, args, { logPath: join(workDir, '..', `${contender}.log`) });
  const uri = `nbd+unix:///?socket=${sock}`;
  const stop = stopper([p], workDir);
  try {
    await waitForNbd(uri, 15_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { contender, uri, pid: p.pid, commands: [`${command} ${args.join(' ')}`], stop };
}

export const qemuNbd: ServerSpec = {
  contender: 'qemu-nbd',
  description: 'qemu-nbd 7.2, raw file, writeback (default cache), unix socket',
  start: (workDir, sizeBytes) =>
    startPlain('qemu-nbd', workDir, sizeBytes, 'qemu-nbd', (sock, file) => [
      '-f',
      'raw',
      '-t',
      '-k',
      sock,
      file,
    ]),
};

export const nbdkitFile: ServerSpec = {
  contender: 'nbdkit',
  description: 'nbdkit 1.32 file plugin (parallel thread model), unix socket',
  start: (workDir, sizeBytes) =>
    startPlain('nbdkit', workDir, sizeBytes, 'nbdkit', (sock, file) => ['-f', '-U', sock, 'file', file]),
};

/** A real `secondsite host serve` agent process with one 2 GiB disk "d0" (change tracking on, as always). */
export const oursAgent: ServerSpec = {
  contender: 'ours',
  description:
    'secondsite host agent (`secondsite host serve`), disk d0 from `host disk create`, unix socket',
  async start(workDir, sizeBytes, repoRoot) {
    await mkdir(workDir, { recursive: true });
    const bin = join(repoRoot, 'bin', 'secondsite.mjs');
    const state = join(workDir, 'state');
    const node = process.execPath;
    const init = ['host', 'init', '--host-id', 'bench', '--state-dir', state, '--replication-port', '0'];
    const r = await runCommand('host init', node, [bin, ...init], { cwd: repoRoot, timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`secondsite host init failed (${r.code}): ${r.stderr.trim()}`);
    const serve = ['host', 'serve', '--state-dir', state, '--log-level', 'warn'];
    const p = startProcess('ours', node, [bin, ...serve], {
      cwd: repoRoot,
      pipeStdout: true,
      logPath: join(workDir, '..', 'ours.log'),
    });
    const stop = stopper([p], workDir);
    try {
      const ready = JSON.parse(await readyLine(p, 30_000)) as { ready?: boolean; nbdSocket?: string };
      if (ready.ready !== true)
        throw new Error(`unexpected ready line from the agent: ${JSON.stringify(ready)}`);
      const create = [
        'host',
        'disk',
        'create',
        'd0',
        '--size',
        `${sizeBytes}`,
        '--state-dir',
        state,
        '--output',
        'json',
      ];
      const c = await runCommand('host disk create', node, [bin, ...create], {
        cwd: repoRoot,
        timeoutMs: 30_000,
      });
      if (c.code !== 0) throw new Error(`secondsite host disk create failed (${c.code}): ${c.stderr.trim()}`);
      const disk = JSON.parse(c.stdout) as { nbdUri: string };
      await waitForNbd(disk.nbdUri, 15_000);
      return {
        contender: 'ours',
        uri: disk.nbdUri,
        pid: p.pid,
        commands: [
          `node bin/secondsite.mjs ${init.join(' ')}`,
          `node bin/secondsite.mjs ${serve.join(' ')}`,
          `node bin/secondsite.mjs ${create.join(' ')}`,
        ],
        stop,
      };
    } catch (e) {
      await stop();
      throw e;
    }
  },
};

/**
 * NbdServer + FileBlockDevice in a bench-only process, with or without the ChangeTrackingFilter. The
 * device is opened as the agent opens its disks (`agent`: small writes synchronous when idle), or with
 * every write through the thread pool (`threadpool`), or behind the older synchronous-write experiment
 * device (`{ syncWritesMaxBytes }`, over a thread-pool device).
 */
export function oursBare(
  tracking: boolean,
  device: 'agent' | 'threadpool' | { readonly syncWritesMaxBytes: number } = 'agent',
  /** `callgrind`: under valgrind's callgrind, instrumentation off, dumps in the work dir (bench/lib/callgrind.ts). */
  runner: 'node' | 'callgrind' = 'node',
): ServerSpec {
  const suffix = device === 'agent' ? '' : device === 'threadpool' ? '-pool' : '-sync';
  const contender = (tracking ? 'ours-ct-on' : 'ours-ct-off') + suffix;
  const deviceArgs =
    device === 'agent'
      ? []
      : device === 'threadpool'
        ? ['--sync-write-max', '0']
        : ['--sync-write-max', '0', '--sync-writes', '--sync-writes-max', `${device.syncWritesMaxBytes}`];
  return {
    contender,
    description:
      (tracking
        ? 'bench/servers/bare-nbd.server.ts: NbdServer + ChangeTrackingFilter + FileBlockDevice'
        : 'bench/servers/bare-nbd.server.ts: NbdServer + FileBlockDevice (no tracking)') +
      (device === 'agent'
        ? ' (device options as the agent)'
        : device === 'threadpool'
          ? ', every write through the thread pool'
          : `, writes <= ${device.syncWritesMaxBytes} B as synchronous pwrite (experiment device)`) +
      (runner === 'callgrind' ? ', under callgrind' : ''),
    async start(workDir, sizeBytes, repoRoot) {
      await mkdir(workDir, { recursive: true });
      const file = join(workDir, 'disk.raw');
      const sock = join(workDir, 's.sock');
      await createSparseFile(file, sizeBytes);
      const script = join(repoRoot, 'bench', 'servers', 'bare-nbd.server.ts');
      const args = ['--import', 'tsx', script, '--file', file, '--socket', sock, ...deviceArgs];
      if (tracking) {
        const dir = join(workDir, 'tracking');
        await mkdir(dir);
        args.push('--tracking', dir);
      }
      const [command, commandArgs] =
        runner === 'callgrind'
          ? ['valgrind', [...callgrindArgs(workDir), process.execPath, ...CALLGRIND_NODE_FLAGS, ...args]]
          : [process.execPath, args];
      const p = startProcess(contender, command, commandArgs, {
        cwd: repoRoot,
        pipeStdout: true,
        logPath: join(workDir, '..', `${contender}.log`),
      });
      const stop = stopper([p], workDir);
      try {
        await readyLine(p, runner === 'callgrind' ? 180_000 : 30_000);
        const uri = `nbd+unix:///d0?socket=${sock}`;
        await waitForNbd(uri, 15_000);
        return {
          contender,
          uri,
          pid: p.pid,
          commands: [
            `${runner === 'callgrind' ? `valgrind ${callgrindArgs('DIR').join(' ')} ` : ''}node ${runner === 'callgrind' ? `${CALLGRIND_NODE_FLAGS.join(' ')} ` : ''}${args.map((a) => a.replace(repoRoot + '/', '')).join(' ')}`,
          ],
          stop,
        };
      } catch (e) {
        await stop();
        throw e;
      }
    },
  };
}

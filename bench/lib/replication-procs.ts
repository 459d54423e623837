/**
 * Starting the bench-only replica processes (bench/servers/replica-receiver.server.ts) and running the
 * primary process (bench/servers/replication-sender.client.ts) for the replication suites.
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { readyLine, runCommand, startProcess, type RunningProcess } from './processes.js';

export interface ReplicaProcess {
  readonly port: number;
  readonly process: RunningProcess;
}

/**
 * The bench processes stand in for host agents, so they run with the agents' V8 flags
 * (src/lab/host-lab.ts): a 64 MB initial heap keeps the 1 MiB chunk buffers (external memory) from
 * starting a full mark-compact every few tens of MiB (measured here: ~10-15 % less CPU per GiB).
 */
const AGENT_NODE_FLAGS = ['--initial-heap-size=64'];

function tsxArgs(repoRoot: string, script: string, args: string[]): string[] {
  return [...AGENT_NODE_FLAGS, '--import', 'tsx', join(repoRoot, 'bench', 'servers', script), ...args];
}

/** Starts a replica-receiver.server.ts in `mode` and waits for its ready line. */
export async function startReplicaProcess(
  repoRoot: string,
  mode: 'receiver' | 'tls-sink' | 'tcp-sink',
  args: string[],
  logPath: string,
): Promise<ReplicaProcess> {
  const p = startProcess(
    mode,
    process.execPath,
    tsxArgs(repoRoot, 'replica-receiver.server.ts', ['--mode', mode, ...args]),
    {
      cwd: repoRoot,
      pipeStdout: true,
      logPath,
    },
  );
  try {
    const ready = JSON.parse(await readyLine(p, 30_000)) as { port?: number };
    if (typeof ready.port !== 'number') throw new Error(`${mode}: no port in the ready line`);
    return { port: ready.port, process: p };
  } catch (e) {
    await p.stop();
    throw e;
  }
}

/** Runs replication-sender.client.ts and returns its {"result": ...} object. */
export async function runSender(
  repoRoot: string,
  args: string[],
  timeoutMs: number,
): Promise<Record<string, number>> {
  const r = await runCommand(
    'sender',
    process.execPath,
    tsxArgs(repoRoot, 'replication-sender.client.ts', args),
    {
      cwd: repoRoot,
      timeoutMs,
    },
  );
  const line = r.stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{"result"'));
  if (r.code !== 0 || line === undefined) {
    throw new Error(`the bench sender failed (${r.code}): ${r.stderr.trim().slice(-2000)}`);
  }
  return (JSON.parse(line) as { result: Record<string, number> }).result;
}

/** A TCP port that was free a moment ago (for peers that cannot report the port they bound). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  await new Promise<void>((r) => server.close(() => r()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/**
 * Child processes for benchmarks: every server and client is started here, remembered by PID, and
 * stopped by PID (SIGTERM, then SIGKILL after a grace period), also when a suite throws or the run is
 * interrupted (SIGINT/SIGTERM/exit). Nothing is ever killed by name.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';

export interface RunningProcess {
  readonly pid: number;
  readonly label: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<RunningProcess>();

export interface StartOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here (for post-mortems); otherwise discarded. */
  readonly logPath?: string;
  /** Keep stdout as a pipe (to read a ready line with `readyLine`); it is still copied to the log. */
  readonly pipeStdout?: boolean;
}

export function startProcess(
  label: string,
  command: string,
  args: string[],
  options: StartOptions = {},
): RunningProcess {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${label}: ${command} ${args.join(' ')}`);
  const pid = child.pid;
  let log: WriteStream | undefined;
  if (options.logPath !== undefined) {
    log = createWriteStream(options.logPath, { flags: 'a' });
    if (!options.pipeStdout) child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
  } else {
    if (!options.pipeStdout) child.stdout?.resume();
    child.stderr?.resume();
  }
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve(code ?? signal ?? 'unknown');
    });
    child.once('error', () => resolve('spawn-error'));
  });
  const handle: RunningProcess = {
    pid,
    label,
    child,
    exited,
    async stop(graceMs = 5000): Promise<void> {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // already gone
        }
        const timer = setTimeout(() => {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }, graceMs);
        await exited;
        clearTimeout(timer);
      }
      live.delete(handle);
      log?.end();
    },
  };
  live.add(handle);
  void exited.then(() => live.delete(handle));
  return handle;
}

/** Resolves with the first stdout line of a process started with `pipeStdout`, or rejects if it exits first. */
export function readyLine(p: RunningProcess, timeoutMs: number): Promise<string> {
  const out = p.child.stdout;
  if (!out) return Promise.reject(new Error(`${p.label}: stdout is not piped`));
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: out });
    const timer = setTimeout(() => {
      rl.close();
      reject(new Error(`${p.label} (pid ${p.pid}) printed no ready line within ${timeoutMs} ms`));
    }, timeoutMs);
    rl.once('line', (line) => {
      clearTimeout(timer);
      rl.close();
      out.resume();
      resolve(line);
    });
    void p.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${p.label} (pid ${p.pid}) exited (${code}) before it was ready`));
    });
  });
}

export interface CommandResult {
  readonly code: number | string;
  readonly stdout: string;
  readonly stderr: string;
  readonly elapsedMs: number;
}

/** Runs a command to completion (tracked, so an interrupted run stops it too). */
export async function runCommand(
  label: string,
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CommandResult> {
  const started = performance.now();
  const p = startProcess(label, command, args, { ...options, pipeStdout: true });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  p.child.stdout?.on('data', (b: Buffer) => stdout.push(b));
  p.child.stderr?.removeAllListeners('data');
  p.child.stderr?.on('data', (b: Buffer) => stderr.push(b));
  const timer =
    options.timeoutMs !== undefined
      ? setTimeout(() => {
          void p.stop(2000);
        }, options.timeoutMs)
      : undefined;
  const code = await p.exited;
  if (timer) clearTimeout(timer);
  live.delete(p);
  return {
    code,
    stdout: Buffer.concat(stdout).toString('utf8'),
    stderr: Buffer.concat(stderr).toString('utf8'),
    elapsedMs: performance.now() - started,
  };
}

/** Stops every process still running (used in finally blocks and on interruption). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop(2000)));
}

/** Synchronous last resort at process exit: SIGKILL by PID whatever is still alive. */
export function killAllSync(): void {
  for (const p of live) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Polls `nbdinfo --size URI` until the server answers (the reference's readiness probe). */
export async function waitForNbd(uri: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = '';
  while (performance.now() < deadline) {
    const r = await runCommand('nbdinfo', 'nbdinfo', ['--size', uri], { timeoutMs: 5000 });
    if (r.code === 0) return;
    last = r.stderr.trim();
    await sleep(50);
  }
  throw new Error(`NBD server at ${uri} not ready within ${timeoutMs} ms: ${last}`);
}

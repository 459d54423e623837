/**
 * A `secondsite <role> serve` child process of the lab: spawned with its stderr (JSON logs) appended to
 * a log file, resolved when it prints its ready line (`{"ready":true,...}`) on stdout, refused when it
 * exits first. Stopped with a signal, SIGKILL after 15 s.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { SecondsiteError } from '../domain/errors.js';

export const BIN = new URL('../../bin/secondsite.mjs', import.meta.url).pathname;

export interface ServeProcess {
  readonly child: ChildProcess;
  /** The ready line, parsed. */
  readonly ready: Record<string, unknown>;
}

export async function spawnServe(
  nodeArgs: readonly string[],
  args: readonly string[],
  log: WriteStream,
  what: string,
  logPath: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ServeProcess> {
  const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  child.stderr.pipe(log, { end: false });
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    const onExit = (code: number | null): void =>
      reject(
        new SecondsiteError(
          'SECONDSITE_ERR_INTERNAL',
          `${what} exited (${code}) before it was ready; see ${logPath}`,
        ),
      );
    child.once('exit', onExit);
    lines.once('line', (line) => {
      child.off('exit', onExit);
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        if (parsed['ready'] === true) resolve(parsed);
        else reject(new Error(`unexpected first line from ${what}: ${line}`));
      } catch {
        reject(new Error(`unexpected first line from ${what}: ${line}`));
      }
    });
  });
  return { child, ready };
}

/** Signals a serve process and waits for it to exit (SIGKILL after 15 s). */
export async function stopServe(child: ChildProcess, sig: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(sig);
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

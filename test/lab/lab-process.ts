/**
 * The lab as a user runs it, for the lab tests: `secondsite lab up --output json` as a real process
 * (its JSON lines collected), and the CLI as a user types it, with SECONDSITE_VAULT_DIR set to the
 * lab's vault.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import type { LabReady, LabSnapshot } from '../../src/lab/lab-up.js';
import { until } from '../../src/testing/wait/until.js';

const bin = new URL('../../bin/secondsite.mjs', import.meta.url).pathname;

export type LabEvent = { event: string } & Partial<LabSnapshot> & Partial<LabReady>;

export interface RunningLab {
  readonly child: ChildProcess;
  readonly events: LabEvent[];
  readonly ready: LabReady;
  stderr(): string;
  /** Runs `secondsite ARGS` against the lab's vault; fails the test with its output if it fails. */
  cli(...args: string[]): Promise<string>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `secondsite lab up ARGS --dir DIR --output json` and waits for its ready line. */
export async function startLab(dir: string, args: string[], readyTimeoutMs = 200_000): Promise<RunningLab> {
  const child = spawn(process.execPath, [bin, 'lab', 'up', '--dir', dir, '--output', 'json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: LabEvent[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  const ready = await new Promise<LabReady>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new Error(
            `the lab was not ready in ${readyTimeoutMs} ms; its steps: ${JSON.stringify(events)}; stderr: ${stderr}`,
          ),
        ),
      readyTimeoutMs,
    );
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the lab exited (${code}) before it was ready; stderr: ${stderr}`));
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      const e = JSON.parse(line) as LabEvent;
      events.push(e);
      if (e.event === 'ready') {
        clearTimeout(timer);
        resolve(e as unknown as LabReady);
      }
    });
  }).catch(async (e: unknown) => {
    child.kill('SIGTERM');
    await exited;
    throw e;
  });
  const env: NodeJS.ProcessEnv = { ...process.env, SECONDSITE_VAULT_DIR: ready.vaultDir };
  delete env['SECONDSITE_VAULT_URL'];
  delete env['SECONDSITE_TOKEN'];
  return {
    child,
    events,
    ready,
    stderr: () => stderr,
    async cli(...cliArgs: string[]): Promise<string> {
      try {
        return (await promisify(execFile)(process.execPath, [bin, ...cliArgs], { encoding: 'utf8', env }))
          .stdout;
      } catch (e) {
        const err = e as { stderr?: string; stdout?: string };
        assert.fail(`secondsite ${cliArgs.join(' ')} failed: ${err.stderr ?? ''}${err.stdout ?? ''}`);
      }
    },
    async stop(): Promise<number | null> {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

export { until };

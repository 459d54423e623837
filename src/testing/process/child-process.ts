/**
 * Child processes for multi-process and crash tests: spawn our binary (`node bin/secondsite.mjs ...`)
 * or a TypeScript script (`node --import tsx file.ts`), wait for its "ready" line, kill -9 it, pause it,
 * and never leak it.
 *
 * Ready protocol: a child announces readiness by printing one JSON object on its own stdout line with
 * `"ready": true` (or `"event": "ready"`), e.g. `{"ready":true,"port":40123}`; `waitForReady()` resolves
 * with that object. Other stdout lines are kept (`stdoutLines`), stderr is kept as a tail for error
 * messages.
 *
 * Cleanup: every child is spawned in its own process group and tracked; `killAllChildren()` sends
 * SIGKILL to every live group and waits for the exits. Call `registerChildCleanup()` once per test file
 * (it registers `after(killAllChildren)`); a process 'exit' hook kills whatever is left as a last resort.
 *
 *   registerChildCleanup();
 *   const agent = spawnSecondsite(['host', 'run', '--config', path]);
 *   const { port } = await agent.waitForReady();
 *   ...; await agent.kill9();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SecondsiteError } from '../../domain/errors.js';

/** The repository root (where bin/ and package.json live). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildOptions {
  /** Name used in error messages (default: the command line). */
  name?: string;
  cwd?: string;
  /** Added to (not replacing) process.env. */
  env?: Record<string, string>;
  /** Keep stdin open as a pipe (default: ignored). */
  stdin?: boolean;
}

const STDERR_TAIL_BYTES = 8192;
const live = new Set<ChildHandle>();

export class ChildHandle {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly name: string;
  /** Every complete stdout line so far. */
  readonly stdoutLines: string[] = [];
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ChildExit>;
  exit: ChildExit | null = null;
  private stderrTail = '';
  private partial = '';
  private readonly lineWaiters = new Set<() => void>();

  constructor(command: string, args: string[], options: ChildOptions = {}) {
    this.name = options.name ?? [command, ...args].join(' ');
    this.proc = spawn(command, args, {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, ...options.env },
      stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      detached: true,
    });
    if (this.proc.pid === undefined) {
      throw new SecondsiteError('SECONDSITE_ERR_INTERNAL', `could not spawn ${this.name}`);
    }
    this.pid = this.proc.pid;
    live.add(this);
    this.proc.stdout?.setEncoding('utf8');
    this.proc.stdout?.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop() ?? '';
      this.stdoutLines.push(...parts);
      this.notify();
    });
    this.proc.stderr?.setEncoding('utf8');
    this.proc.stderr?.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
    });
    this.exited = new Promise<ChildExit>((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        if (this.partial) this.stdoutLines.push(this.partial);
        this.partial = '';
        this.notify();
        resolve(this.exit);
      });
      this.proc.on('error', () => {
        // spawn failures surface through 'exit' with a code, or not at all: make sure we resolve.
        if (this.exit === null) {
          this.exit = { code: null, signal: null };
          live.delete(this);
          this.notify();
          resolve(this.exit);
        }
      });
    });
  }

  /** The last few KiB of stderr. */
  get stderr(): string {
    return this.stderrTail;
  }

  get running(): boolean {
    return this.exit === null;
  }

  /**
   * Resolves with the first stdout line (and its JSON value, if it parses) that matches; rejects when
   * the child exits first or after `timeoutMs`.
   */
  async waitForLine(
    matches: (line: string, json: unknown) => boolean,
    timeoutMs = 20_000,
  ): Promise<{ line: string; json: unknown }> {
    const deadline = Date.now() + timeoutMs;
    let scanned = 0;
    for (;;) {
      for (; scanned < this.stdoutLines.length; scanned++) {
        const line = this.stdoutLines[scanned] as string;
        const json = parseJson(line);
        if (matches(line, json)) return { line, json };
      }
      if (this.exit !== null) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          `${this.name} exited (code ${this.exit.code}, signal ${this.exit.signal}) before the expected line; stderr:\n${this.stderrTail}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_TIMEOUT',
          `${this.name} did not print the expected line within ${timeoutMs} ms; stderr:\n${this.stderrTail}`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, left);
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.lineWaiters.add(done);
      });
    }
  }

  /** Waits for the ready line (see the file comment) and returns its JSON object. */
  async waitForReady(timeoutMs = 20_000): Promise<Record<string, unknown>> {
    const { json } = await this.waitForLine((_line, j) => isReady(j), timeoutMs);
    return json as Record<string, unknown>;
  }

  /** SIGKILL to the child's process group (the child and anything it spawned); waits for the exit. */
  async kill9(): Promise<ChildExit> {
    this.signalGroup('SIGKILL');
    return this.exited;
  }

  /** Sends `signal` (default SIGTERM), waits up to `graceMs`, then SIGKILLs. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<ChildExit> {
    if (this.exit) return this.exit;
    this.signalGroup(signal);
    const timer = new Promise<null>((resolve) => setTimeout(() => resolve(null), graceMs).unref());
    const result = await Promise.race([this.exited, timer]);
    return result ?? this.kill9();
  }

  /** SIGSTOP / SIGCONT (a stale process for fencing tests). */
  pause(): void {
    this.signalGroup('SIGSTOP');
  }

  resume(): void {
    this.signalGroup('SIGCONT');
  }

  /** Sends a signal to the whole process group; a no-op once the child has exited. */
  signalGroup(signal: NodeJS.Signals): void {
    if (this.exit !== null) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      try {
        this.proc.kill(signal);
      } catch {
        // already gone
      }
    }
  }

  private notify(): void {
    for (const w of [...this.lineWaiters]) w();
    this.lineWaiters.clear();
  }
}

function parseJson(line: string): unknown {
  const t = line.trim();
  if (!t.startsWith('{')) return undefined;
  try {
    return JSON.parse(t) as unknown;
  } catch {
    return undefined;
  }
}

function isReady(json: unknown): boolean {
  if (typeof json !== 'object' || json === null) return false;
  const o = json as Record<string, unknown>;
  return o.ready === true || o.event === 'ready';
}

/** Spawns any command as a tracked child (own process group). */
export function spawnChild(command: string, args: string[], options: ChildOptions = {}): ChildHandle {
  return new ChildHandle(command, args, options);
}

/** Spawns `node bin/secondsite.mjs ...args`. */
export function spawnSecondsite(args: string[], options: ChildOptions = {}): ChildHandle {
  return spawnChild(process.execPath, [`${REPO_ROOT}bin/secondsite.mjs`, ...args], {
    name: `secondsite ${args.join(' ')}`,
    ...options,
  });
}

/** Spawns `node --import tsx <file> ...args` (a TypeScript script of the repo). */
export function spawnTsScript(file: string, args: string[] = [], options: ChildOptions = {}): ChildHandle {
  return spawnChild(process.execPath, ['--import', 'tsx', file, ...args], {
    name: `${file} ${args.join(' ')}`,
    ...options,
  });
}

/** SIGKILLs every tracked child still running and waits for them to exit. */
export async function killAllChildren(): Promise<void> {
  await Promise.all([...live].map((c) => c.kill9()));
}

/** Tracked children still running. */
export function liveChildren(): ChildHandle[] {
  return [...live];
}

/** Registers `after(killAllChildren)` in the current test file (call once, at top level). */
export function registerChildCleanup(): void {
  after(killAllChildren);
}

process.on('exit', () => {
  for (const c of live) {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

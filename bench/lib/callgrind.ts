/**
 * Instruction counts of a server process, for costs too small for throughput to judge on this machine:
 * two shared vCPUs move a server's throughput 10-25 % between processes of the same code, while
 * callgrind counts instructions repeatably whatever else the machine does (env: the same total twice,
 * once with the other core loaded; `perf stat -e instructions` is "not supported" here).
 *
 * The process runs under `valgrind --tool=callgrind --instr-atstart=no`, so start-up and warm-up are not
 * counted (and run several times faster than instrumented code). `countInstructions` turns the
 * instrumentation on, zeroes the counters, runs the work, dumps and turns it off again, all with
 * `callgrind_control` against the PID, and reads the dump's total. The count is every user-space
 * instruction of the process, every thread included (the libuv pool, V8's compiler and GC threads);
 * the kernel's work in system calls is not in it.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from './processes.js';

const DUMP_PREFIX = 'callgrind.';

/**
 * node's flags for a counted process: V8 on the main thread only, so its compiler and garbage collector
 * run at points the program decides, not when another thread happens to finish (with its helper threads
 * a server's count per request moved by 10-40 % between rounds of the same requests; 2026-11-23).
 */
export const CALLGRIND_NODE_FLAGS: readonly string[] = ['--single-threaded'];

/** valgrind's arguments before the command: callgrind, instrumentation off, dumps into `outDir`. */
export function callgrindArgs(outDir: string): string[] {
  return [
    '--tool=callgrind',
    '--instr-atstart=no',
    `--callgrind-out-file=${join(outDir, `${DUMP_PREFIX}%p.out`)}`,
  ];
}

async function control(pid: number, args: string[]): Promise<void> {
  const r = await runCommand('callgrind_control', 'callgrind_control', [...args, String(pid)], {
    timeoutMs: 60_000,
  });
  if (r.code !== 0 || !r.stdout.includes('OK')) {
    throw new Error(
      `callgrind_control ${args.join(' ')} ${pid} failed (${r.code}): ${(r.stderr + r.stdout).trim()}`,
    );
  }
}

/** The `totals:` of the newest dump (callgrind.PID.out.N, the highest N) of `pid` in `outDir`. */
async function latestTotal(outDir: string, pid: number): Promise<number> {
  const prefix = `${DUMP_PREFIX}${pid}.out.`;
  const parts = (await readdir(outDir))
    .filter((f) => f.startsWith(prefix))
    .map((f) => Number(f.slice(prefix.length)))
    .filter((n) => Number.isInteger(n));
  if (parts.length === 0) throw new Error(`no callgrind dump of pid ${pid} in ${outDir}`);
  const file = join(outDir, `${prefix}${Math.max(...parts)}`);
  const m = /^totals:\s+(\d+)/m.exec(await readFile(file, 'utf8'));
  if (m?.[1] === undefined) throw new Error(`${file} has no totals line`);
  return Number(m[1]);
}

/** Instructions the process `pid` (under callgrind, see `callgrindArgs`) executes while `work` runs. */
export async function countInstructions(
  pid: number,
  outDir: string,
  work: () => Promise<void>,
): Promise<number> {
  await control(pid, ['-i', 'on']);
  try {
    await control(pid, ['-z']);
    await work();
    await control(pid, ['-d']);
  } finally {
    await control(pid, ['-i', 'off']);
  }
  return latestTotal(outDir, pid);
}

/**
 * `npm run bench [-- SUITE ...] [--runtime S] [--ramp S] [--reps N] [--quick] [--jobs ID,...]`
 *
 * Runs the named benchmark suites (all by default), prints one table per suite with our numbers, the
 * peers' numbers and the ratio against each target (PASS/MISS), and writes the whole result as JSON to
 * bench/results/<timestamp>.json and bench/results/latest.json. A missed target never makes the exit
 * status non-zero; only a harness failure (a suite that throws) does. Benchmarks are not tests and do
 * not run in CI. See docs/benchmarks.md.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { format, resolveConfig } from 'prettier';
import { deltaCycleSuite } from './delta-cycle.bench.js';
import { initialReplicationSuite } from './initial-replication.bench.js';
import { trackingInstructionsSuite } from './tracking-instructions.bench.js';
import { replicationLagSuite } from './replication-lag.bench.js';
import { vaultScaleSuite } from './vault-scale.bench.js';
import {
  nbdAgentVsBare,
  nbdSyncWriteExperiment,
  nbdTrackingSuite,
  nbdWritePathSuite,
} from './nbd-write-path.bench.js';
import { NBD_JOBS } from './lib/fio.js';
import { killAllSync, runCommand, stopAll } from './lib/processes.js';
import { renderSuite } from './lib/report.js';
import type { BenchOptions, Suite, SuiteResult } from './lib/suite.js';

const SUITES: readonly Suite[] = [
  nbdWritePathSuite,
  nbdTrackingSuite,
  trackingInstructionsSuite,
  initialReplicationSuite,
  deltaCycleSuite,
  replicationLagSuite,
  vaultScaleSuite,
  nbdSyncWriteExperiment,
  nbdAgentVsBare,
];

const repoRoot = resolve(new URL('..', import.meta.url).pathname);

function toolVersion(cmd: string, args: string[]): string {
  try {
    return (
      execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .split('\n')[0]
        ?.trim() ?? ''
    );
  } catch {
    return 'not installed';
  }
}

function machine(): Record<string, unknown> {
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    kernel: toolVersion('uname', ['-r']),
    node: process.version,
    fio: toolVersion('fio', ['--version']),
    qemuNbd: toolVersion('qemu-nbd', ['--version']),
    nbdkit: toolVersion('nbdkit', ['--version']),
    nbdcopy: toolVersion('nbdcopy', ['--version']),
    // a run from an exported tree (git archive, no .git) names its commit in SECONDSITE_BENCH_COMMIT
    gitCommit:
      process.env['SECONDSITE_BENCH_COMMIT'] ??
      toolVersion('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD']),
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      runtime: { type: 'string' },
      ramp: { type: 'string' },
      reps: { type: 'string' },
      quick: { type: 'boolean' },
      jobs: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(
      `usage: npm run bench -- [SUITE ...] [--runtime S] [--ramp S] [--reps N] [--quick] [--jobs ID,...]\n` +
        `suites: ${SUITES.map((s) => `${s.name}${s.optIn ? ' [opt-in]' : ''} (${s.title})`).join('\n        ')}\n` +
        `defaults: --runtime 8 --ramp 2 --reps 3; --quick = --runtime 2 --ramp 1 --reps 1\n` +
        `--jobs: only these fio jobs in the NBD suites (${NBD_JOBS.map((j) => j.id).join(', ')})\n`,
    );
    return 0;
  }
  const unknown = positionals.filter((p) => !SUITES.some((s) => s.name === p));
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown suite(s): ${unknown.join(', ')}; known: ${SUITES.map((s) => s.name).join(', ')}\n`,
    );
    return 2;
  }
  const num = (v: string | undefined, dflt: number, name: string): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got '${v}'`);
    return n;
  };
  const jobIds = values.jobs?.split(',').map((j) => j.trim());
  const badJobs = (jobIds ?? []).filter((j) => !NBD_JOBS.some((k) => k.id === j));
  if (badJobs.length > 0) {
    process.stderr.write(
      `unknown fio job(s): ${badJobs.join(', ')}; known: ${NBD_JOBS.map((j) => j.id).join(', ')}\n`,
    );
    return 2;
  }
  const quick = values.quick ?? false;
  const selected =
    positionals.length > 0
      ? SUITES.filter((s) => positionals.includes(s.name))
      : SUITES.filter((s) => !s.optIn);
  const scratchDir = await mkdtemp(join(tmpdir(), 'secondsite-bench-'));
  const options: BenchOptions = {
    runtimeSeconds: num(values.runtime, quick ? 2 : 8, 'runtime'),
    rampSeconds: num(values.ramp, quick ? 1 : 2, 'ramp'),
    repetitions: Math.round(num(values.reps, quick ? 1 : 3, 'reps')),
    ...(jobIds === undefined ? {} : { jobIds }),
    scratchDir,
    repoRoot,
    log: (line) => process.stdout.write(`${line}\n`),
  };
  const interrupt = (signal: NodeJS.Signals): void => {
    process.stderr.write(`\nbench: ${signal}, stopping servers and removing ${scratchDir}\n`);
    void stopAll()
      .then(() => rm(scratchDir, { recursive: true, force: true }))
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  process.once('exit', killAllSync);

  const started = new Date();
  const machineInfo = machine();
  const results: SuiteResult[] = [];
  const failures: string[] = [];
  process.stdout.write(
    `bench: ${selected.map((s) => s.name).join(', ')}; runtime ${options.runtimeSeconds} s, ramp ${options.rampSeconds} s, ${options.repetitions} repetition(s)\n`,
  );
  try {
    for (const suite of selected) {
      process.stdout.write(`\n-- ${suite.name}: ${suite.title}\n`);
      try {
        // No suite pays for the writeback of the one before (delta leaves GiBs of dirty pages behind).
        await runCommand('sync', 'sync', [], { timeoutMs: 300_000 });
        const loadBefore = loadavg()[0] ?? 0;
        const r = await suite.run({
          ...options,
          scratchDir: await mkdtemp(join(scratchDir, `${suite.name}-`)),
        });
        const loadNote =
          `1-min load average ${loadBefore.toFixed(2)} before the suite, ${(loadavg()[0] ?? 0).toFixed(2)} after ` +
          `(${cpus().length} CPUs; more than ~1 before means other work shared the machine, or the tail of the suite before)`;
        const withLoad = { ...r, notes: [...r.notes, loadNote] };
        results.push(withLoad);
        process.stdout.write(`\n${renderSuite(withLoad)}\n`);
      } catch (e) {
        failures.push(`${suite.name}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        process.stderr.write(`bench: suite ${suite.name} failed: ${String(e)}\n`);
      } finally {
        await stopAll();
      }
    }
  } finally {
    await stopAll();
    await rm(scratchDir, { recursive: true, force: true });
  }
  const doc = {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: machineInfo,
    options: {
      runtimeSeconds: options.runtimeSeconds,
      rampSeconds: options.rampSeconds,
      repetitions: options.repetitions,
      ...(jobIds === undefined ? {} : { jobs: jobIds }),
    },
    results,
    failures,
  };
  const outDir = join(repoRoot, 'bench', 'results');
  await mkdir(outDir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  // Formatted as the repository's prettier would (npm test checks every file, results included).
  const outFile = join(outDir, `${stamp}.json`);
  const text = await format(JSON.stringify(doc), { ...(await resolveConfig(outFile)), parser: 'json' });
  await writeFile(outFile, text);
  await writeFile(join(outDir, 'latest.json'), text);
  // A full-length run (every default suite, the documented defaults or longer, none failed) is kept
  // under a stable name and committed; a run of some suites does not replace it.
  const everyDefaultSuite = SUITES.filter((s) => !s.optIn).every((s) => selected.includes(s));
  if (
    everyDefaultSuite &&
    jobIds === undefined &&
    failures.length === 0 &&
    options.runtimeSeconds >= 8 &&
    options.repetitions >= 3
  )
    await writeFile(join(outDir, 'last-full-run.json'), text);
  process.stdout.write(`\nbench: results written to bench/results/${stamp}.json (and latest.json)\n`);
  return failures.length > 0 ? 1 : 0;
}

process.exitCode = await main();

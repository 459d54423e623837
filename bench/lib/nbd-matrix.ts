/**
 * Runs the fio jobs against several NBD servers, interleaved, the order rotated per repetition (A B C,
 * B C A, C A B, ...: a contender does not always run right after the same one, whose dirty pages are
 * still being written back): for each repetition, each server in turn gets a fresh sparse file, is
 * started, serves every job (one fio process and one connection per job, after a `sync` so no job
 * pays for the writeback of the one before), and is stopped by PID. A failed start or job is noted and
 * leaves that sample out; it does not end the run.
 */
import { join } from 'node:path';
import { NBD_JOBS, prefillDisk, runFio, type FioJob } from './fio.js';
import { runCommand } from './processes.js';
import type { ServerSpec, StartedServer } from './nbd-servers.js';
import { median, type BenchOptions, type Measurement } from './suite.js';

export const DISK_BYTES = 2 * 1024 ** 3;

export interface MatrixResult {
  readonly measurements: Measurement[];
  readonly notes: string[];
  /** contender -> command lines used. */
  readonly commands: Record<string, readonly string[]>;
}

export async function runNbdMatrix(
  servers: readonly ServerSpec[],
  options: BenchOptions,
  allJobs: readonly FioJob[] = NBD_JOBS,
  layout: {
    /**
     * Pairwise: all servers of a repetition run at once (each on its own fresh file) and every job is
     * measured on each of them in turn and then again in the reverse order (A B B A, the first order
     * rotating per job and repetition), so the samples of one job are taken seconds apart instead of a
     * whole server's run apart, and every contender is measured first and last equally often: a job
     * run right after another server's same job was measured 20-30 % slower whichever server it was
     * (2026-11-23), and with 3 repetitions a plain rotation leaves that 2:1. For near-equal contenders
     * (tracking on / off), where the drift of this VM over a minute is larger than the difference.
     */
    readonly pairwise?: boolean;
  } = {},
): Promise<MatrixResult> {
  const jobs = options.jobIds === undefined ? allJobs : allJobs.filter((j) => options.jobIds?.includes(j.id));
  const samples = new Map<string, Map<string, number[]>>(); // job -> contender -> values
  const clat = new Map<string, Map<string, number[]>>();
  const notes: string[] = [];
  const commands: Record<string, readonly string[]> = {};
  for (const job of jobs) {
    samples.set(job.id, new Map(servers.map((s) => [s.contender, []])));
    clat.set(job.id, new Map(servers.map((s) => [s.contender, []])));
  }
  const start = async (spec: ServerSpec, rep: number): Promise<StartedServer | undefined> => {
    try {
      const server = await spec.start(
        join(options.scratchDir, `${spec.contender}-${rep}`),
        DISK_BYTES,
        options.repoRoot,
      );
      commands[spec.contender] = server.commands;
      return server;
    } catch (e) {
      notes.push(`repetition ${rep + 1}: ${spec.contender} did not start: ${String(e)}`);
      options.log(`  ${spec.contender}: did not start: ${String(e)}`);
      return undefined;
    }
  };
  const measure = async (
    spec: ServerSpec,
    server: StartedServer,
    job: FioJob,
    rep: number,
    prefill = job.prefill === true,
  ): Promise<void> => {
    try {
      if (prefill) await prefillDisk(server.uri, DISK_BYTES);
      // Every job starts with no dirty pages anywhere: the writeback of the previous job (a faster
      // server leaves more behind, and so does the prefill) must not land inside this measurement.
      await runCommand('sync', 'sync', [], { timeoutMs: 120_000 });
      const r = await runFio(job, server.uri, DISK_BYTES, options.runtimeSeconds, options.rampSeconds);
      const value = job.metric === 'iops' ? r.iops : r.mibps;
      samples.get(job.id)?.get(spec.contender)?.push(value);
      clat.get(job.id)?.get(spec.contender)?.push(r.clatMeanUs);
      options.log(
        `  rep ${rep + 1} ${spec.contender.padEnd(12)} ${job.label.padEnd(18)} ${formatValue(value)} ${job.metric === 'iops' ? 'IOPS' : 'MiB/s'} (clat ${r.clatMeanUs.toFixed(0)} us)`,
      );
    } catch (e) {
      notes.push(`repetition ${rep + 1}: ${spec.contender} ${job.label} failed: ${String(e)}`);
      options.log(`  ${spec.contender} ${job.label}: failed: ${String(e)}`);
    }
  };
  const rotated = (k: number): ServerSpec[] =>
    servers.map((_, i) => servers[(i + k) % servers.length] as ServerSpec);
  for (let rep = 0; rep < options.repetitions; rep++) {
    if (layout.pairwise === true) {
      const running = new Map<ServerSpec, StartedServer>();
      try {
        for (const spec of rotated(rep)) {
          const server = await start(spec, rep);
          if (server !== undefined) running.set(spec, server);
        }
        for (const [j, job] of jobs.entries()) {
          const order = rotated(rep + j);
          // a read job's disk is prefilled once per server, not per sample (the job does not change it)
          const prefilled = new Set<ServerSpec>();
          for (const spec of [...order, ...[...order].reverse()]) {
            const server = running.get(spec);
            if (server === undefined) continue;
            const prefill = job.prefill === true && !prefilled.has(spec);
            prefilled.add(spec);
            await measure(spec, server, job, rep, prefill);
          }
        }
      } finally {
        for (const server of running.values()) await server.stop();
      }
      continue;
    }
    for (const spec of rotated(rep)) {
      const server = await start(spec, rep);
      if (server === undefined) continue;
      try {
        for (const job of jobs) await measure(spec, server, job, rep);
      } finally {
        await server.stop();
      }
    }
  }
  const measurements = jobs.map((job): Measurement => {
    const s = Object.fromEntries(samples.get(job.id) ?? []);
    const c = Object.fromEntries(clat.get(job.id) ?? []);
    return {
      name: job.label,
      unit: job.metric === 'iops' ? 'IOPS' : 'MiB/s',
      higherIsBetter: true,
      samples: s,
      medians: Object.fromEntries(Object.entries(s).map(([k, v]) => [k, median(v)])),
      details: Object.fromEntries(Object.entries(c).map(([k, v]) => [k, { clatMeanUs: median(v) }])),
    };
  });
  return { measurements, notes, commands };
}

export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return '-';
  if (v >= 100) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(v >= 10 ? 1 : 2);
}

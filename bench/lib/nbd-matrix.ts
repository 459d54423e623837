/**
 * Runs the fio jobs against several NBD servers, interleaved, the order rotated per repetition (A B C,
 * B C A, C A B, ...: a contender does not always run right after the same one, whose dirty pages are
 * still being written back): for each repetition, each server in turn gets a fresh sparse file, is
 * started, serves every job (one fio process and one connection per job, after a `sync` so no job
 * pays for the writeback of the one before), and is stopped by PID. A failed start or job is noted and
 * leaves that sample out; it does not end the run.
 */
import { join } from 'node:path';
import { NBD_JOBS, runFio, type FioJob } from './fio.js';
import { runCommand } from './processes.js';
import type { ServerSpec } from './nbd-servers.js';
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
  jobs: readonly FioJob[] = NBD_JOBS,
): Promise<MatrixResult> {
  const samples = new Map<string, Map<string, number[]>>(); // job -> contender -> values
  const clat = new Map<string, Map<string, number[]>>();
  const notes: string[] = [];
  const commands: Record<string, readonly string[]> = {};
  for (const job of jobs) {
    samples.set(job.id, new Map(servers.map((s) => [s.contender, []])));
    clat.set(job.id, new Map(servers.map((s) => [s.contender, []])));
  }
  for (let rep = 0; rep < options.repetitions; rep++) {
    const order = servers.map((_, i) => servers[(i + rep) % servers.length] as ServerSpec);
    for (const spec of order) {
      const workDir = join(options.scratchDir, `${spec.contender}-${rep}`);
      let server;
      try {
        server = await spec.start(workDir, DISK_BYTES, options.repoRoot);
      } catch (e) {
        notes.push(`repetition ${rep + 1}: ${spec.contender} did not start: ${String(e)}`);
        options.log(`  ${spec.contender}: did not start: ${String(e)}`);
        continue;
      }
      commands[spec.contender] = server.commands;
      try {
        for (const job of jobs) {
          try {
            // Every job starts with no dirty pages anywhere: the writeback of the previous job (a
            // faster server leaves more behind) must not land inside the next job's measurement.
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
        }
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

/**
 * The five fio jobs of peers-and-limits.md section 2.6, run through fio's nbd ioengine (libnbd, one
 * connection) exactly as the reference harness ran them:
 *   fio --name=NAME --ioengine=nbd --uri=URI --size=2G --time_based --runtime=R --ramp_time=2
 *       --rw=RW --bs=BS --iodepth=QD --output-format=json
 */
import { runCommand } from './processes.js';

export interface FioJob {
  /** Short id used in JSON results, e.g. "randwrite-4k-qd1". */
  readonly id: string;
  /** Row label, e.g. "4k randwrite QD1". */
  readonly label: string;
  readonly rw: 'randwrite' | 'write' | 'randread' | 'read';
  readonly bs: string;
  readonly iodepth: number;
  /** What the row reports: IOPS for 4k jobs, MiB/s for sequential ones. */
  readonly metric: 'iops' | 'mibps';
  readonly sequential: boolean;
  /**
   * Write the whole disk once (1 MiB, QD8, not timed) right before this job: a read job then reads the
   * same fully written file on every server, not whatever each server's earlier write jobs reached
   * (a faster server had allocated more of its file).
   */
  readonly prefill?: boolean;
}

export const NBD_JOBS: readonly FioJob[] = [
  {
    id: 'randwrite-4k-qd1',
    label: '4k randwrite QD1',
    rw: 'randwrite',
    bs: '4k',
    iodepth: 1,
    metric: 'iops',
    sequential: false,
  },
  {
    id: 'randwrite-4k-qd32',
    label: '4k randwrite QD32',
    rw: 'randwrite',
    bs: '4k',
    iodepth: 32,
    metric: 'iops',
    sequential: false,
  },
  {
    id: 'write-64k-qd8',
    label: '64k seq write QD8',
    rw: 'write',
    bs: '64k',
    iodepth: 8,
    metric: 'mibps',
    sequential: true,
  },
  {
    id: 'write-1m-qd8',
    label: '1M seq write QD8',
    rw: 'write',
    bs: '1M',
    iodepth: 8,
    metric: 'mibps',
    sequential: true,
  },
  {
    id: 'randread-4k-qd32',
    label: '4k randread QD32',
    rw: 'randread',
    bs: '4k',
    iodepth: 32,
    metric: 'iops',
    sequential: false,
    prefill: true,
  },
];

/** Writes the whole disk once through NBD (1 MiB, QD8), untimed; see `FioJob.prefill`. */
export async function prefillDisk(uri: string, sizeBytes: number): Promise<void> {
  const args = [
    '--name=prefill',
    '--ioengine=nbd',
    `--uri=${uri}`,
    `--size=${sizeBytes}`,
    '--rw=write',
    '--bs=1M',
    '--iodepth=8',
  ];
  const r = await runCommand('fio prefill', 'fio', args, { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`fio prefill of ${uri} failed (${r.code}): ${r.stderr.trim()}`);
}

export interface FioOutcome {
  readonly iops: number;
  readonly mibps: number;
  readonly clatMeanUs: number;
  readonly clatP99Us: number;
  readonly errors: number;
}

/** fio's arguments for `job`, run for a time (after a ramp) or for a number of requests. */
export function fioArgs(
  job: FioJob,
  uri: string,
  sizeBytes: number,
  length: { readonly runtimeSeconds: number; readonly rampSeconds: number } | { readonly requests: number },
): string[] {
  const lengthArgs =
    'requests' in length
      ? [`--number_ios=${length.requests}`]
      : ['--time_based', `--runtime=${length.runtimeSeconds}`, `--ramp_time=${length.rampSeconds}`];
  return [
    `--name=${job.id}`,
    '--ioengine=nbd',
    `--uri=${uri}`,
    `--size=${sizeBytes}`,
    ...lengthArgs,
    `--rw=${job.rw}`,
    `--bs=${job.bs}`,
    `--iodepth=${job.iodepth}`,
    '--output-format=json',
  ];
}

interface FioDirection {
  iops: number;
  bw_bytes: number;
  total_ios: number;
  clat_ns: { mean: number; percentile?: Record<string, number> };
}

interface FioJson {
  jobs: { error: number; read: FioDirection; write: FioDirection }[];
}

/** Runs fio with `args` and returns the job's direction (read or write) of its JSON report. */
async function runFioJson(
  job: FioJob,
  uri: string,
  args: string[],
  timeoutMs: number,
): Promise<{ direction: FioDirection; errors: number }> {
  const r = await runCommand(`fio ${job.id}`, 'fio', args, { timeoutMs });
  // fio's nbd engine prints "fio: connected to NBD server" on stdout before the JSON document.
  const start = r.stdout.indexOf('{');
  if (r.code !== 0 || start < 0) {
    throw new Error(`fio ${job.id} against ${uri} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  const parsed = JSON.parse(r.stdout.slice(start)) as FioJson;
  const j = parsed.jobs[0];
  if (!j) throw new Error(`fio ${job.id}: no job in the JSON output`);
  return { direction: job.rw.endsWith('read') ? j.read : j.write, errors: j.error };
}

export async function runFio(
  job: FioJob,
  uri: string,
  sizeBytes: number,
  runtimeSeconds: number,
  rampSeconds: number,
): Promise<FioOutcome> {
  const args = fioArgs(job, uri, sizeBytes, { runtimeSeconds, rampSeconds });
  const { direction: d, errors } = await runFioJson(
    job,
    uri,
    args,
    (runtimeSeconds + rampSeconds + 60) * 1000,
  );
  return {
    iops: d.iops,
    mibps: d.bw_bytes / 2 ** 20,
    clatMeanUs: d.clat_ns.mean / 1000,
    clatP99Us: (d.clat_ns.percentile?.['99.000000'] ?? Number.NaN) / 1000,
    errors,
  };
}

/**
 * Runs a job for a fixed number of requests (`--number_ios`) instead of a time, for a count of work
 * done per request (bench/lib/callgrind.ts); returns the requests fio completed.
 */
export async function runFioCount(
  job: FioJob,
  uri: string,
  sizeBytes: number,
  requests: number,
  timeoutMs: number,
): Promise<number> {
  const args = fioArgs(job, uri, sizeBytes, { requests });
  const { direction, errors } = await runFioJson(job, uri, args, timeoutMs);
  if (errors !== 0) throw new Error(`fio ${job.id} against ${uri}: ${errors} errors`);
  return direction.total_ios;
}

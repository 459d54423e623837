/**
 * The shape every benchmark suite shares. A suite measures our implementation and one or more peers in
 * the same run (interleaved, fresh state each run) and turns the medians into ratios checked against the
 * targets of /work/shared/reference/peers-and-limits.md section 4. A MISS is a finding, not a failure:
 * suites never throw for a missed target, only for a harness problem (a peer that will not start).
 */

export interface BenchOptions {
  /** fio runtime (seconds) per job, after the ramp. */
  readonly runtimeSeconds: number;
  /** fio ramp (seconds) per job, not measured. */
  readonly rampSeconds: number;
  /** Interleaved repetitions (A/B/C A/B/C ...); the reported number is the median. */
  readonly repetitions: number;
  /** Scratch directory for this run (removed afterwards). */
  readonly scratchDir: string;
  /** Repository root (for bin/secondsite.mjs and the bench servers). */
  readonly repoRoot: string;
  readonly log: (line: string) => void;
  /** fio job ids to run (`--jobs`; the NBD suites only); all jobs when absent. */
  readonly jobIds?: readonly string[];
}

/** One measured quantity (a job or a phase) for every contender. */
export interface Measurement {
  /** e.g. "4k randwrite QD32". */
  readonly name: string;
  /** e.g. "IOPS", "MiB/s", "s". */
  readonly unit: string;
  /** Whether larger is better (throughput) or smaller is better (time). */
  readonly higherIsBetter: boolean;
  /** contender -> one value per repetition, in run order. */
  readonly samples: Record<string, number[]>;
  /** contender -> median of the samples. */
  readonly medians: Record<string, number>;
  /** Extra per-contender details (latency, bytes read, counters), medians where numeric. */
  readonly details?: Record<string, Record<string, number>>;
}

/** A target: ratio = value(subject) / value(reference), checked against `min` or `max`. */
export interface TargetCheck {
  readonly measurement: string;
  readonly description: string;
  readonly ratio: number;
  readonly min?: number;
  readonly max?: number;
  /** Must-targets decide PASS/MISS; stretch targets are shown for information. */
  readonly kind: 'must' | 'stretch';
  readonly pass: boolean;
}

export interface SuiteResult {
  readonly suite: string;
  readonly title: string;
  readonly contenders: readonly string[];
  readonly measurements: readonly Measurement[];
  readonly targets: readonly TargetCheck[];
  /** Things the reader must know to interpret the numbers (fallbacks taken, stages skipped). */
  readonly notes: readonly string[];
}

export interface Suite {
  readonly name: string;
  readonly title: string;
  /** Opt-in suites (experiments) run only when named. */
  readonly optIn?: boolean;
  readonly run: (options: BenchOptions) => Promise<SuiteResult>;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Checks `subject / reference` of a measurement's medians against a bound. */
export function checkRatio(
  m: Measurement,
  subject: string,
  reference: string,
  bound: { min?: number; max?: number },
  kind: 'must' | 'stretch',
  description: string,
): TargetCheck {
  const ratio = (m.medians[subject] ?? Number.NaN) / (m.medians[reference] ?? Number.NaN);
  const pass =
    Number.isFinite(ratio) &&
    (bound.min === undefined || ratio >= bound.min) &&
    (bound.max === undefined || ratio <= bound.max);
  return { measurement: m.name, description, ratio, ...bound, kind, pass };
}

/** Checks a derived ratio (not a plain subject/reference of one measurement) against a bound. */
export function checkValue(
  measurement: string,
  description: string,
  ratio: number,
  bound: { min?: number; max?: number },
  kind: 'must' | 'stretch',
): TargetCheck {
  const pass =
    Number.isFinite(ratio) &&
    (bound.min === undefined || ratio >= bound.min) &&
    (bound.max === undefined || ratio <= bound.max);
  return { measurement, description, ratio, ...bound, kind, pass };
}

/** Builds a measurement from per-contender samples. */
export function measurement(
  name: string,
  unit: string,
  higherIsBetter: boolean,
  samples: Record<string, number[]>,
  details?: Record<string, Record<string, number>>,
): Measurement {
  return {
    name,
    unit,
    higherIsBetter,
    samples,
    medians: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)])),
    ...(details ? { details } : {}),
  };
}

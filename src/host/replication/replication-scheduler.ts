/**
 * Runs a relationship's cycles on its copy frequency (30 s / 5 min / 15 min on a fixed grid; a slot
 * that passes while a cycle still runs is counted as missed, never queued) or continuously (the next
 * cycle as soon as the previous completes, at least `minGapMs` after the previous start). Outcomes go
 * into the relationship's stats for the report and health. Time from an injected Clock; waits through
 * an injected sleep that `stop()` interrupts.
 */
import type { Clock } from '../../domain/clock.js';
import { SecondsiteError } from '../../domain/errors.js';
import { isCopyFrequency, nextCycle } from '../../domain/replication/copy-schedule.js';
import { recordOutcome } from '../../domain/replication/relationship-stats.js';
import type { RelationshipStats } from '../../domain/replication/relationship-stats.js';

export interface SchedulerConfig {
  readonly clock: Clock;
  /** Resolves after `ms`, or early when `signal` aborts. */
  readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** 0 (continuous), 30, 300 or 900. */
  readonly copyFrequencySeconds: number;
  /** Continuous mode: least time between two cycle starts (default 1000). */
  readonly minGapMs?: number;
  /**
   * Takes the cut and ships it (ReplicationSender.shipCycle); throws when the cycle failed. Returns
   * 'held' when the cycle was deliberately not run (a resync the policy holds back): no outcome counts.
   */
  readonly runCycle: () => Promise<void | 'held'>;
  readonly stats: RelationshipStats;
}

export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

export class ReplicationScheduler {
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;
  cyclesStarted = 0;

  constructor(private readonly config: SchedulerConfig) {
    if (!isCopyFrequency(config.copyFrequencySeconds)) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `copy frequency ${config.copyFrequencySeconds} s is not supported: use 30, 300, 900, or 0 for continuous`,
      );
    }
    config.stats.copyFrequencySeconds = config.copyFrequencySeconds;
  }

  start(): void {
    if (this.loop) return;
    this.loop = this.run();
  }

  /** Stops after the running cycle (if any) ends. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { clock, stats } = this.config;
    while (!this.abort.signal.aborted) {
      const startedMs = clock.monotonicMs();
      this.cyclesStarted++;
      try {
        if ((await this.config.runCycle()) !== 'held') recordOutcome(stats, 'ok');
      } catch {
        recordOutcome(stats, 'failed');
      }
      const endedMs = clock.monotonicMs();
      const d = nextCycle(this.config.copyFrequencySeconds, startedMs, endedMs, this.config.minGapMs ?? 1000);
      for (let i = 0; i < d.missed; i++) recordOutcome(stats, 'missed');
      const waitMs = d.nextStartMs - clock.monotonicMs();
      if (waitMs > 0 && !this.abort.signal.aborted) await this.config.sleep(waitMs, this.abort.signal);
    }
  }
}

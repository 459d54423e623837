/**
 * The guest application: a small database-like workload on NBD disks.
 *
 * States (changed only in this class):
 *   running   the writer appends records at `recordsPerSec`, flushing every `flushEveryRecords`
 *             records or `flushEveryMs` ms, whichever comes first;
 *   quiesced  the writer finished its write in flight and a FLUSH covering every record completed; no
 *             write is issued until thaw() or the auto-thaw timer (`autoThawMs`);
 *   stopping  shutdown was asked: the writer stops, a final FLUSH runs, the disks are closed.
 *
 * Invariants:
 *   - one WRITE in flight at most, records in seq order: every crash image is a prefix of the log plus
 *     at most one torn slot (see guest-log.validator.ts);
 *   - `lastDurableSeq` only counts records written before a FLUSH that completed;
 *   - a quiesce answer means the on-disk log is consistent and complete up to `lastWrittenSeq`;
 *   - a disk error is never swallowed: `onFatal` is called (guest-main exits non-zero).
 */
import { SecondsiteError } from '../../domain/errors.js';
import { NbdClient } from '../nbd-client.js';
import type { GuestConfig } from './guest-config.js';
import { parseNbdUri } from './guest-config.js';
import {
  encodeRecord,
  encodeSuperblock,
  planFormat,
  slotOfSeq,
  slotOffsetBytes,
  type GuestLogFormat,
} from './guest-log.format.js';
import { assertGuestLogValid, validateGuestLog, type GuestLogReport } from './guest-log.validator.js';

export type GuestRunState = 'running' | 'quiesced' | 'stopping';

/** GET /state */
export interface GuestStateView {
  guestId: string;
  state: GuestRunState;
  lastWrittenSeq: number;
  lastDurableSeq: number;
  /** The newest valid record found at boot (0 on a blank disk). */
  bootSeq: number;
  /** This boot's number (1 on a blank disk; the last record's incarnation + 1 otherwise). */
  incarnation: number;
  recordsPerSec: number;
  payloadBytes: number;
  slotCount: number;
  /** Completed laps of the circular log. */
  lap: number;
  logValid: true;
  /** Boot found a torn last slot (a write interrupted by a crash), now overwritten. */
  bootTornTail: boolean;
  flushes: number;
  autoThaws: number;
  /** Wall-clock time the auto-thaw fires, while quiesced. */
  autoThawAtWallMs: number | null;
  bootedWallMs: number;
  /** The addresses the HTTP API answers on (real ports, also when configured as 0). */
  listen: { host: string; port: number }[];
}

export interface QuiesceAnswer {
  state: 'quiesced';
  lastWrittenSeq: number;
  lastDurableSeq: number;
  autoThawAtWallMs: number;
  alreadyQuiesced: boolean;
}

export class GuestApp {
  private state: GuestRunState = 'running';
  private lastWrittenSeq: number;
  private lastDurableSeq: number;
  private unflushedSince: number | null = null;
  private unflushedCount = 0;
  private flushes = 0;
  private autoThaws = 0;
  private holdRequested = false;
  private autoThawTimer: NodeJS.Timeout | null = null;
  private autoThawAtWallMs: number | null = null;
  private quiesceWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private wake: (() => void) | null = null;
  private writer: Promise<void> | null = null;
  private stopped: Promise<void> | null = null;
  private readonly bootedWallMs = Date.now();
  private listen: { host: string; port: number }[] = [];

  private constructor(
    readonly config: GuestConfig,
    private readonly disks: NbdClient[],
    readonly format: GuestLogFormat,
    readonly boot: GuestLogReport,
    readonly incarnation: number,
    private readonly onFatal: (e: Error) => void,
  ) {
    this.lastWrittenSeq = boot.lastSeq;
    this.lastDurableSeq = boot.lastSeq;
  }

  /**
   * Connects the disks, validates (or formats a blank) log, and starts writing. Throws
   * SECONDSITE_ERR_INVALID_STATE with the validator's problem if the log is invalid.
   */
  static async boot(config: GuestConfig, onFatal: (e: Error) => void): Promise<GuestApp> {
    const disks: NbdClient[] = [];
    try {
      for (const uri of config.disks) {
        const a = parseNbdUri(uri);
        disks.push(
          await NbdClient.connect({ socketPath: a.socketPath, exportName: a.exportName, blockStatus: false }),
        );
      }
      const log = disks[0] as NbdClient;
      const report = await validateGuestLog((o, l) => log.read(o, l), log.sizeBytes);
      assertGuestLogValid(report, `the guest log on ${config.disks[0]}`);
      let format = report.format;
      if (!format) {
        format = planFormat(log.sizeBytes, config.payloadBytes, config.guestId, Date.now());
        if (log.readOnly)
          throw new SecondsiteError(
            'SECONDSITE_ERR_INVALID_STATE',
            'the log disk is blank and read-only; give the guest a writable disk',
          );
        await log.write(0, encodeSuperblock(format));
        await log.flush();
      }
      if (log.readOnly && config.recordsPerSec > 0)
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          'the log disk is read-only; set recordsPerSec to 0 or give the guest a writable disk',
        );
      const incarnation = (report.lastRecord?.incarnation ?? 0) + 1;
      const app = new GuestApp(config, disks, format, report, incarnation, onFatal);
      app.writer = app.runWriter();
      return app;
    } catch (e) {
      await Promise.allSettled(disks.map((d) => d.close()));
      throw e;
    }
  }

  view(): GuestStateView {
    return {
      guestId: this.config.guestId,
      state: this.state,
      lastWrittenSeq: this.lastWrittenSeq,
      lastDurableSeq: this.lastDurableSeq,
      bootSeq: this.boot.lastSeq,
      incarnation: this.incarnation,
      recordsPerSec: this.config.recordsPerSec,
      payloadBytes: this.format.payloadBytes,
      slotCount: this.format.slotCount,
      lap: Math.floor(Math.max(0, this.lastWrittenSeq - 1) / this.format.slotCount),
      logValid: true,
      bootTornTail: this.boot.tornTail,
      flushes: this.flushes,
      autoThaws: this.autoThaws,
      autoThawAtWallMs: this.autoThawAtWallMs,
      bootedWallMs: this.bootedWallMs,
      listen: this.listen,
    };
  }

  /** Records where the HTTP API listens (set by guest-main once bound). */
  setListen(listen: { host: string; port: number }[]): void {
    this.listen = listen;
  }

  /**
   * Finishes the write in flight, flushes, and holds writes until thaw() or `autoThawMs` (default
   * from the config). Idempotent: quiescing a quiesced guest restarts its auto-thaw timer.
   */
  async quiesce(autoThawMs = this.config.autoThawMs): Promise<QuiesceAnswer> {
    if (this.state === 'stopping')
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        'the guest is shutting down; it cannot quiesce',
        {
          state: this.state,
        },
      );
    const alreadyQuiesced = this.state === 'quiesced';
    if (!alreadyQuiesced) {
      this.holdRequested = true;
      await new Promise<void>((resolve, reject) => {
        this.quiesceWaiters.push({ resolve, reject });
        this.poke();
      });
    }
    this.armAutoThaw(autoThawMs);
    return {
      state: 'quiesced',
      lastWrittenSeq: this.lastWrittenSeq,
      lastDurableSeq: this.lastDurableSeq,
      autoThawAtWallMs: this.autoThawAtWallMs ?? Date.now(),
      alreadyQuiesced,
    };
  }

  /** Resumes writing. Returns false if the guest was not quiesced (a no-op). */
  thaw(reason: 'host' | 'auto' = 'host'): boolean {
    if (this.state !== 'quiesced' && !this.holdRequested) return false;
    this.holdRequested = false;
    const waiters = this.quiesceWaiters;
    this.quiesceWaiters = [];
    for (const w of waiters)
      w.reject(new SecondsiteError('SECONDSITE_ERR_INVALID_STATE', 'thawed before the quiesce completed'));
    this.clearAutoThaw();
    if (this.state === 'quiesced') this.state = 'running';
    if (reason === 'auto') this.autoThaws++;
    this.poke();
    return true;
  }

  /** Stops writing, flushes, closes the disks. Idempotent; resolves when everything is closed. */
  shutdown(): Promise<void> {
    this.stopped ??= (async () => {
      this.state = 'stopping';
      this.holdRequested = false;
      this.clearAutoThaw();
      this.poke();
      await this.writer;
      const waiters = this.quiesceWaiters;
      this.quiesceWaiters = [];
      for (const w of waiters)
        w.reject(new SecondsiteError('SECONDSITE_ERR_INVALID_STATE', 'the guest is shutting down'));
      try {
        if (this.unflushedCount > 0) await this.flush();
      } finally {
        await Promise.allSettled(this.disks.map((d) => d.close()));
      }
    })();
    return this.stopped;
  }

  private armAutoThaw(ms: number): void {
    this.clearAutoThaw();
    this.autoThawAtWallMs = Date.now() + ms;
    this.autoThawTimer = setTimeout(() => this.thaw('auto'), ms);
  }

  private clearAutoThaw(): void {
    if (this.autoThawTimer) clearTimeout(this.autoThawTimer);
    this.autoThawTimer = null;
    this.autoThawAtWallMs = null;
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        if (this.wake === done) this.wake = null;
        resolve();
      };
      const t = setTimeout(done, Math.max(0, ms));
      this.wake = done;
    });
  }

  private async flush(): Promise<void> {
    const covered = this.lastWrittenSeq;
    this.unflushedCount = 0;
    this.unflushedSince = null;
    await (this.disks[0] as NbdClient).flush();
    this.flushes++;
    if (covered > this.lastDurableSeq) this.lastDurableSeq = covered;
  }

  private async append(): Promise<void> {
    const seq = this.lastWrittenSeq + 1;
    const slot = encodeRecord(this.format, {
      seq,
      incarnation: this.incarnation,
      timestampWallMs: Date.now(),
      guestId: this.config.guestId,
    });
    await (this.disks[0] as NbdClient).write(slotOffsetBytes(this.format, slotOfSeq(this.format, seq)), slot);
    this.lastWrittenSeq = seq;
    this.unflushedCount++;
    this.unflushedSince ??= performance.now();
  }

  private async runWriter(): Promise<void> {
    const rate = this.config.recordsPerSec;
    let baseMs = performance.now();
    let sinceBase = 0;
    try {
      while (this.state !== 'stopping') {
        if (this.holdRequested && this.state === 'running') {
          await this.flush();
          this.state = 'quiesced';
          const waiters = this.quiesceWaiters;
          this.quiesceWaiters = [];
          for (const w of waiters) w.resolve();
          continue;
        }
        if (this.state === 'quiesced') {
          await this.sleep(60_000);
          baseMs = performance.now(); // no burst to catch up after a thaw
          sinceBase = 0;
          continue;
        }
        const now = performance.now();
        if (this.unflushedCount > 0 && now - (this.unflushedSince ?? now) >= this.config.flushEveryMs) {
          await this.flush();
          continue;
        }
        let due = rate > 0 ? Math.floor(((now - baseMs) * rate) / 1000) - sinceBase : 0;
        if (due > Math.max(1, rate)) {
          // More than a second behind (a stall): drop the backlog instead of bursting.
          baseMs = now;
          sinceBase = 0;
          due = 1;
        }
        if (due > 0) {
          await this.append();
          sinceBase++;
          if (this.unflushedCount >= this.config.flushEveryRecords) await this.flush();
          continue;
        }
        const nextWriteMs = rate > 0 ? baseMs + ((sinceBase + 1) * 1000) / rate - now : 60_000;
        const flushInMs =
          this.unflushedSince === null ? Infinity : this.unflushedSince + this.config.flushEveryMs - now;
        await this.sleep(Math.min(nextWriteMs, flushInMs, 60_000));
      }
    } catch (e) {
      this.state = 'stopping';
      const waiters = this.quiesceWaiters;
      this.quiesceWaiters = [];
      for (const w of waiters) w.reject(e as Error);
      this.onFatal(e as Error);
    }
  }
}

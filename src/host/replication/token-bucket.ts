/**
 * Bandwidth limit for the replication sender: a token bucket refilled at `bytesPerSec` with a burst
 * of `burstBytes`. `take(n)` may run the bucket into debt (a chunk is never split) and then waits until
 * the debt is repaid, so the long-run rate is `bytesPerSec` and a single wait is at most one chunk's
 * worth. Time from an injected clock, waits through an injected sleep.
 */
import type { Clock } from '../../domain/clock.js';

export class TokenBucket {
  private tokens: number;
  private lastMs: number;

  constructor(
    private readonly bytesPerSec: number,
    private readonly burstBytes: number,
    private readonly clock: Clock,
    private readonly sleep: (ms: number) => Promise<void>,
  ) {
    if (!(bytesPerSec > 0) || !(burstBytes > 0))
      throw new RangeError('token bucket rate and burst must be > 0');
    this.tokens = burstBytes;
    this.lastMs = clock.monotonicMs();
  }

  private refill(): void {
    const now = this.clock.monotonicMs();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.lastMs) * this.bytesPerSec) / 1000);
    this.lastMs = now;
  }

  async take(bytes: number): Promise<void> {
    this.refill();
    this.tokens -= bytes;
    while (this.tokens < 0) {
      await this.sleep(Math.ceil((-this.tokens * 1000) / this.bytesPerSec));
      this.refill();
    }
  }
}

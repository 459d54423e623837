/**
 * A round of background work run again `intervalMs` after each round ends (never two at once), until
 * `stop()`, which waits for a round under way. The round handles its own errors.
 */
export class RepeatingRound {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly round: () => Promise<void>,
    private readonly intervalMs: number,
  ) {}

  /** The first round after `firstDelayMs` (default: at once, on the next turn of the event loop). */
  start(firstDelayMs = 0): void {
    const tick = (): void => {
      if (this.stopped) return;
      this.running = this.round().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.intervalMs);
      });
    };
    this.timer = setTimeout(tick, firstDelayMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}

/**
 * The provider's outbound session with the vault (DESIGN.md section 2: the vault never dials a site):
 * a heartbeat every interval the vault gave at registration (the vault may change it in its answer).
 * A failed heartbeat is logged and retried at the next tick; the session never gives up while the
 * management server runs. After each answered heartbeat, `afterHeartbeat` runs (the fabric sends its
 * inventory when the vault's `inventoryVersion` differs; its failures are its own to log) beside the
 * heartbeats, one run at a time (a heartbeat answered while a run is still going starts none), so a
 * slow inventory send never delays a heartbeat into a lost-heartbeat alert. `stop` waits for it.
 */
import type { Logger } from '../../observability/logger.js';
import type { VaultClient } from './vault-client.js';

export interface HeartbeatAnswer {
  heartbeatIntervalSeconds: number;
  /** The inventory version the vault holds for this management server. */
  inventoryVersion: number;
  serverTime: string;
}

export class ProviderSession {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  private afterRunning: Promise<void> | null = null;
  private stopped = false;
  heartbeatsSent = 0;
  lastError: string | null = null;

  constructor(
    private readonly client: VaultClient,
    private readonly managementServerId: string,
    private intervalSeconds: number,
    private readonly providerVersion: string,
    private readonly log: Logger,
    private readonly afterHeartbeat?: (answer: HeartbeatAnswer) => Promise<void>,
  ) {}

  start(): void {
    this.tick();
  }

  private tick(): void {
    if (this.stopped) return;
    this.running = this.beat().finally(() => {
      if (!this.stopped) this.timer = setTimeout(() => this.tick(), this.intervalSeconds * 1000);
    });
  }

  private async beat(): Promise<void> {
    let r: HeartbeatAnswer;
    try {
      r = await this.client.post<HeartbeatAnswer>(
        `/v1/management-servers/${encodeURIComponent(this.managementServerId)}/heartbeat`,
        { providerVersion: this.providerVersion },
      );
      this.heartbeatsSent++;
      if (this.lastError !== null) this.log.info('heartbeat reaches the vault again');
      this.lastError = null;
      // the vault may change the interval; within bounds (a bad answer must not stop or flood the session)
      if (Number.isFinite(r.heartbeatIntervalSeconds))
        this.intervalSeconds = Math.min(3600, Math.max(1, r.heartbeatIntervalSeconds));
    } catch (e) {
      const message = (e as Error).message;
      if (message !== this.lastError)
        this.log.warn('heartbeat to the vault failed; retrying', { error: message });
      this.lastError = message;
      return;
    }
    if (this.afterHeartbeat && this.afterRunning === null && !this.stopped) {
      this.afterRunning = this.afterHeartbeat(r)
        .catch((e: unknown) => this.log.warn('after-heartbeat work failed', { error: (e as Error).message }))
        .finally(() => {
          this.afterRunning = null;
        });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    await this.afterRunning;
  }
}

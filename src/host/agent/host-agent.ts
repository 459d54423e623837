/**
 * The host agent process (`secondsite host serve`): owns this host's disks, serves them over NBD,
 * tracks their changes, replicates them to replica hosts and keeps the recovery points it receives.
 *
 * Lifecycle: `start()` opens every component and then listens; `stop()` stops accepting, drains, and
 * closes change tracking cleanly (a stop that does not reach `stop()` is an unclean stop, detected at
 * the next start). Components register their control routes and metrics here.
 */
import { mkdir } from 'node:fs/promises';
import type { Clock } from '../../domain/clock.js';
import type { Logger } from '../observability/logger.js';
import { MetricsRegistry } from '../observability/metrics.js';
import { ControlServer, type Route } from './control-server.js';
import type { HostConfig } from './host-config.js';

export const systemClock: Clock = {
  wallMs: () => Date.now(),
  monotonicMs: () => performance.now(),
};

export interface HostStatus {
  hostId: string;
  uptimeSeconds: number;
  controlSocket: string;
  nbdSocket: string;
}

export class HostAgent {
  readonly metrics = new MetricsRegistry();
  private control: ControlServer | null = null;
  private readonly startedMs: number;

  constructor(
    readonly config: HostConfig,
    private readonly log: Logger,
    private readonly clock: Clock = systemClock,
  ) {
    this.startedMs = clock.monotonicMs();
    this.metrics.register(
      'secondsite_host_up',
      'The host agent is running (always 1 when scraped).',
      'gauge',
      () => [{ labels: { host: config.hostId }, value: 1 }],
    );
  }

  status(): HostStatus {
    return {
      hostId: this.config.hostId,
      uptimeSeconds: Math.round((this.clock.monotonicMs() - this.startedMs) / 1000),
      controlSocket: this.config.controlSocket,
      nbdSocket: this.config.nbdSocket,
    };
  }

  routes(): Route[] {
    return [
      { method: 'GET', path: '/v1/status', handler: () => Promise.resolve({ body: this.status() }) },
      {
        method: 'GET',
        path: '/metrics',
        handler: () =>
          Promise.resolve({ body: this.metrics.render(), contentType: 'text/plain; version=0.0.4' }),
      },
    ];
  }

  async start(): Promise<void> {
    await mkdir(this.config.stateDir, { recursive: true, mode: 0o700 });
    await mkdir(this.config.storageRoot, { recursive: true, mode: 0o700 });
    this.control = new ControlServer(this.routes(), this.log);
    await this.control.listen(this.config.controlSocket);
    this.log.info('host agent started', {
      hostId: this.config.hostId,
      controlSocket: this.config.controlSocket,
    });
  }

  async stop(): Promise<void> {
    await this.control?.close();
    this.control = null;
    this.log.info('host agent stopped', { hostId: this.config.hostId });
  }
}

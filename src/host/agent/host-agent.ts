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
import type { DiskView } from '../../protocol/host-api/disks.schema.js';
import { createDiskBodySchema, resizeDiskBodySchema } from '../../protocol/host-api/disks.schema.js';
import { parseBody } from '../../protocol/host-api/schema.js';
import { NbdServer } from '../nbd/nbd-server.js';
import type { Logger } from '../observability/logger.js';
import { MetricsRegistry } from '../observability/metrics.js';
import { NodeStorage } from '../storage/node-storage.js';
import type { Storage } from '../storage/storage.js';
import { ControlServer, type Route } from './control-server.js';
import { DiskService } from './disk-service.js';
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
  nbdConnections: number;
  disks: DiskView[];
}

export class HostAgent {
  readonly metrics = new MetricsRegistry();
  private control: ControlServer | null = null;
  private readonly startedMs: number;
  private readonly nbd: NbdServer;
  private diskService: DiskService | null = null;

  constructor(
    readonly config: HostConfig,
    private readonly log: Logger,
    private readonly clock: Clock = systemClock,
    private readonly storage: Storage = new NodeStorage(),
  ) {
    this.nbd = new NbdServer({ log: log.child({ component: 'nbd' }) });
    this.startedMs = clock.monotonicMs();
    this.metrics.register(
      'secondsite_host_up',
      'The host agent is running (always 1 when scraped).',
      'gauge',
      () => [{ labels: { host: config.hostId }, value: 1 }],
    );
  }

  get disks(): DiskService {
    if (!this.diskService) throw new Error('host agent not started');
    return this.diskService;
  }

  async status(): Promise<HostStatus> {
    return {
      hostId: this.config.hostId,
      uptimeSeconds: Math.round((this.clock.monotonicMs() - this.startedMs) / 1000),
      controlSocket: this.config.controlSocket,
      nbdSocket: this.config.nbdSocket,
      nbdConnections: this.nbd.connectionCount,
      disks: this.diskService ? await this.diskService.list() : [],
    };
  }

  routes(): Route[] {
    return [
      { method: 'GET', path: '/v1/status', handler: async () => ({ body: await this.status() }) },
      {
        method: 'GET',
        path: '/v1/disks',
        handler: async () => ({ body: { disks: await this.disks.list() } }),
      },
      {
        method: 'GET',
        path: '/v1/disks/:diskId',
        handler: async ({ params }) => ({ body: await this.disks.get(params['diskId'] ?? '') }),
      },
      {
        method: 'POST',
        path: '/v1/disks',
        handler: async ({ body }) => {
          const b = parseBody(createDiskBodySchema, body, 'disk');
          const r = await this.disks.create(b.diskId, b.name ?? b.diskId, b.sizeBytes);
          return { status: r.created ? 201 : 200, body: r.disk };
        },
      },
      {
        method: 'POST',
        path: '/v1/disks/:diskId/resize',
        handler: async ({ params, body }) => {
          const b = parseBody(resizeDiskBodySchema, body, 'resize request');
          return { body: await this.disks.resize(params['diskId'] ?? '', b.sizeBytes, b.force) };
        },
      },
      {
        method: 'DELETE',
        path: '/v1/disks/:diskId',
        handler: async ({ params }) => ({
          body: { deleted: await this.disks.delete(params['diskId'] ?? '') },
        }),
      },
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
    this.diskService = await DiskService.start(
      this.storage,
      this.config.storageRoot,
      this.clock,
      this.nbd,
      this.config.nbdSocket,
      this.log.child({ component: 'disks' }),
    );
    await this.nbd.listenUnix(this.config.nbdSocket);
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
    await this.nbd.close();
    await this.diskService?.close();
    this.diskService = null;
    this.log.info('host agent stopped', { hostId: this.config.hostId });
  }
}

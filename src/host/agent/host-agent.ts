/**
 * The host agent process (`secondsite host serve`): owns this host's disks, serves them over NBD,
 * tracks their changes, replicates them to replica hosts and keeps the recovery points it receives.
 *
 * Lifecycle: `start()` opens every component and then listens; `stop()` stops accepting, drains, and
 * closes change tracking cleanly (a stop that does not reach `stop()` is an unclean stop, detected at
 * the next start). Components register their control routes and metrics here.
 */
import { mkdir } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import type { Clock } from '../../domain/clock.js';
import type { DiskView } from '../../protocol/host-api/disks.schema.js';
import { NbdServer } from '../nbd/nbd-server.js';
import type { Logger } from '../../observability/logger.js';
import { MetricsRegistry } from '../../observability/metrics.js';
import { registerReplicationMetrics } from './host-metrics.js';
import { NodeStorage } from '../storage/node-storage.js';
import type { Storage } from '../storage/storage.js';
import { isSecondsiteError } from '../../domain/errors.js';
import { recoverKeyCertPair } from '../../pki/key-cert-pair.js';
import { loadTlsIdentity, type TlsIdentity } from '../pki/tls-config.js';
import { isManagerConnection, loadManagerTrust, peerCallerOf } from './manager-caller.js';
import { managerPeerRoutes } from './manager-peer-routes.js';
import { hostCertificateRoutes, hostKeyPair } from './host-certificate.js';
import { PEER_ALPN, plannedFailoverBodySchema } from '../../protocol/host-api/peer.schema.js';
import { parseBody } from '../../protocol/host-api/schema.js';
import {
  deleteReplicaOnPeer,
  peerFailoverRoutes,
  plannedFailover,
  type PeerFailoverDeps,
} from '../failover/peer-failover.js';
import { ControlServer, RouteDispatcher, type Route } from '../../control-api/control-server.js';
import {
  authorizationRoutes,
  diskRoutes,
  failoverRoutes,
  plannedFailoverRoutes,
  reverseReplicationRoutes,
  relationshipRoutes,
  replicaRoutes,
  vmRoutes,
} from './host-routes.js';
import { AuthorizationService } from './authorization-service.js';
import { managerDelegatedRoutes } from './manager-delegated-routes.js';
import { hostReplicationStatus } from './replication-status.js';
import { DiskService } from './disk-service.js';
import type { HostConfig } from './host-config.js';
import { RelationshipService, type RelationshipView } from './relationship-service.js';
import { ReplicaService, type ReplicaView } from './replica-service.js';
import { VmService } from './vm-service.js';
import { FailoverService, type FailoverView } from '../failover/failover-service.js';
import { ProcessVmDriver } from '../vm/process-vm-driver.js';
import type { VmStatus } from '../vm/vm-driver.js';

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
  /** Port of the replication listener; null when the host has no certificate yet. */
  replicationPort: number | null;
  disks: DiskView[];
  /** Relationships this host replicates as primary. */
  relationships: RelationshipView[];
  /** Replicas this host keeps for other hosts. */
  replicas: ReplicaView[];
  /** VMs defined on this host (their power state and guest). */
  vms: VmStatus[];
  /** Test failovers and failovers this host runs as a replica. */
  failovers: FailoverView[];
}

export class HostAgent {
  readonly metrics = new MetricsRegistry();
  private control: ControlServer | null = null;
  private readonly startedMs: number;
  private readonly nbd: NbdServer;
  private diskService: DiskService | null = null;
  private authorizationService: AuthorizationService | null = null;
  private relationshipService: RelationshipService | null = null;
  private replicaService: ReplicaService | null = null;
  private vmService: VmService | null = null;
  private failoverService: FailoverService | null = null;
  /** The peer API (fed TLS connections from the replication port; never listens itself). */
  private peerHttp: HttpServer | null = null;

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
    registerReplicationMetrics(
      this.metrics,
      () => this.relationshipService?.list() ?? [],
      () => this.replicaService?.snapshot() ?? [],
    );
  }

  get disks(): DiskService {
    if (!this.diskService) throw new Error('host agent not started');
    return this.diskService;
  }

  get relationships(): RelationshipService {
    if (!this.relationshipService) throw new Error('host agent not started');
    return this.relationshipService;
  }

  get replicas(): ReplicaService {
    if (!this.replicaService) throw new Error('host agent not started');
    return this.replicaService;
  }

  get vms(): VmService {
    if (!this.vmService) throw new Error('host agent not started');
    return this.vmService;
  }

  get failovers(): FailoverService {
    if (!this.failoverService) throw new Error('host agent not started');
    return this.failoverService;
  }

  /**
   * This host's replication identity, trusting its own CA and every managed trust group's CA;
   * SECONDSITE_ERR_NOT_FOUND (with the fix) when it has no certificate.
   */
  async identity(): Promise<TlsIdentity> {
    const local = await loadTlsIdentity(this.config.replication.pkiDir, this.config.hostId);
    const authorization = this.authorizationService;
    if (!authorization) return local;
    const managed = authorization.trustedCaPems();
    return {
      ...local,
      ca: managed.length === 0 ? local.ca : Buffer.concat([local.ca, Buffer.from(`\n${managed.join('\n')}`)]),
      issuersOf: (hostId) => authorization.list().issuersOf(hostId),
    };
  }

  get authorization(): AuthorizationService {
    if (!this.authorizationService) throw new Error('host agent not started');
    return this.authorizationService;
  }

  async status(): Promise<HostStatus> {
    return {
      hostId: this.config.hostId,
      uptimeSeconds: Math.round((this.clock.monotonicMs() - this.startedMs) / 1000),
      controlSocket: this.config.controlSocket,
      nbdSocket: this.config.nbdSocket,
      nbdConnections: this.nbd.connectionCount,
      replicationPort: this.replicaService?.listeningPort ?? null,
      disks: this.diskService ? await this.diskService.list() : [],
      relationships: this.relationshipService?.list() ?? [],
      replicas: this.replicaService ? await this.replicaService.list() : [],
      vms: this.vmService ? await this.vmService.list() : [],
      failovers: this.failoverService?.list() ?? [],
    };
  }

  routes(): Route[] {
    return [
      { method: 'GET', path: '/v1/status', handler: async () => ({ body: await this.status() }) },
      {
        method: 'GET',
        path: '/v1/replication-status',
        handler: async () => ({
          body: await hostReplicationStatus(this.config.hostId, this.relationships, this.replicas),
        }),
      },
      {
        method: 'GET',
        path: '/metrics',
        handler: () =>
          Promise.resolve({ body: this.metrics.render(), contentType: 'text/plain; version=0.0.4' }),
      },
      ...diskRoutes(
        () => this.disks,
        () => this.relationships,
      ),
      ...relationshipRoutes(
        () => this.relationships,
        (definition) => deleteReplicaOnPeer({ identity: () => this.identity() }, definition),
      ),
      ...replicaRoutes(() => this.replicas),
      ...authorizationRoutes(() => this.authorization),
      ...vmRoutes(() => this.vms),
      ...failoverRoutes(
        () => this.failovers,
        () => this.replicas,
      ),
      ...plannedFailoverRoutes(
        () => this.vms,
        () => this.relationships,
      ),
      ...reverseReplicationRoutes(() => ({
        disks: this.disks,
        relationships: this.relationships,
        replicas: this.replicas,
        vms: this.vms,
        failovers: this.failovers,
      })),
      {
        method: 'POST',
        path: '/v1/relationships/:id/planned-failover',
        handler: async ({ params, body }) => ({
          body: await plannedFailover(
            this.peerFailoverDeps(),
            params['id'] ?? '',
            parseBody(plannedFailoverBodySchema, body ?? {}, 'planned failover request'),
          ),
        }),
      },
    ];
  }

  private peerFailoverDeps(): PeerFailoverDeps {
    return {
      disks: this.disks,
      relationships: this.relationships,
      replicas: this.replicas,
      vms: this.vms,
      failovers: this.failovers,
      storage: this.storage,
      stateDir: this.config.stateDir,
      identity: () => this.identity(),
      replicationListen: () => ({
        host: this.config.replication.listenHost,
        port: this.replicas.listeningPort,
      }),
      log: this.log.child({ component: 'failover' }),
    };
  }

  /** Routes other hosts call over mutual TLS on the replication port (docs/design/failover.md 8). */
  private peerRoutes(): Route[] {
    return [
      ...peerFailoverRoutes(() => ({
        replicas: this.replicas,
        failovers: this.failovers,
        relationships: this.relationships,
      })),
      // the management server's calls (manager-caller.ts guards each)
      ...managerPeerRoutes(() => ({ config: this.config, vms: this.vms, disks: this.disks })),
      ...hostCertificateRoutes(() => ({
        config: this.config,
        // the listener's context now; outgoing connections read the identity when they dial
        onInstalled: async () => this.replicas.updateTls(await this.identity()),
      })),
      ...managerDelegatedRoutes(this.routes()),
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
    await recoverKeyCertPair(hostKeyPair(this.config)); // a renewal a crash interrupted
    const localIdentity = await loadTlsIdentity(this.config.replication.pkiDir, this.config.hostId).catch(
      (e: unknown) => {
        if (isSecondsiteError(e, 'SECONDSITE_ERR_NOT_FOUND')) return null;
        throw e;
      },
    );
    const authorization = await AuthorizationService.open(
      this.storage,
      this.config,
      localIdentity ? localIdentity.ca.toString('utf8') : null,
    );
    this.authorizationService = authorization;
    const identity = localIdentity ? await this.identity() : null;
    this.replicaService = new ReplicaService(
      this.storage,
      this.config,
      this.nbd,
      this.clock,
      this.log.child({ component: 'replica' }),
    );
    const replicas = this.replicaService;
    replicas.authorization = () => authorization.list();
    authorization.onChange(async () => {
      const next = await this.identity().catch(() => null);
      if (next) replicas.updateTls(next);
    });
    // the management server this host enrolled into (manager.json, read at start) calls too
    const managerTrust = await loadManagerTrust(this.config.stateDir);
    const peer = new RouteDispatcher(this.peerRoutes(), this.log.child({ component: 'peer' }), (req) =>
      req.socket && 'alpnProtocol' in req.socket
        ? peerCallerOf(req.socket as TLSSocket, managerTrust)
        : undefined,
    );
    const peerHttp = createHttpServer(peer.listener());
    this.peerHttp = peerHttp;
    this.replicaService.peer = {
      alpn: PEER_ALPN,
      onConnection: (socket) => peerHttp.emit('connection', socket),
      admit: (socket) => isManagerConnection(socket, managerTrust),
    };
    await this.replicaService.start(identity);
    this.relationshipService = new RelationshipService(
      this.storage,
      this.config.stateDir,
      this.diskService,
      () => this.identity(),
      this.clock,
      this.log.child({ component: 'relationships' }),
    );
    await this.relationshipService.start();
    await this.nbd.listenUnix(this.config.nbdSocket);
    const driver = await ProcessVmDriver.open({
      stateDir: join(this.config.stateDir, 'vms'),
      storage: this.storage,
      log: this.log.child({ component: 'vms' }),
    });
    this.vmService = new VmService(
      driver,
      this.diskService,
      this.config.nbdSocket,
      this.log.child({ component: 'vms' }),
    );
    const relationships = this.relationshipService;
    const vms = this.vmService;
    await vms.init();
    relationships.vmConfigOf = (vmId) => vms.templateJson(vmId);
    relationships.quiesceVm = (vmId) => vms.quiesce(vmId);
    this.vmService.refuseStart = (vmId) => {
      const fenced = relationships.fencedOf(vmId)[0];
      if (fenced?.state === 'prepared') {
        return `VM ${vmId} is prepared for a planned failover to ${fenced.replica.hostId} (its last changes are in point ${fenced.preparedPoint?.pointId ?? '?'}); fail over on the replica host, or cancel with 'secondsite host replication resume ${fenced.relationshipId}'`;
      }
      if (fenced) {
        return `VM ${vmId} was failed over to ${fenced.replica.hostId}, which now runs it (this host is fenced at epoch ${fenced.epoch}); set up reverse replication, resume at the new epoch after a cancelled failover ('secondsite host replication resume ${fenced.relationshipId} --epoch N'), or disable replication`;
      }
      // reverse replication moved the VM's disks into a replica store (relationship id = VM id)
      return this.replicaService?.has(vmId) && this.failoverService?.get(vmId).state === 'receiving'
        ? `VM ${vmId} is a replica on this host now (its disks hold the recovery points of reverse replication); fail it over to run it here ('secondsite host failover planned ${vmId}' on its primary, or 'secondsite host failover start ${vmId}' here)`
        : null;
    };
    this.failoverService = new FailoverService(
      this.storage,
      this.config.stateDir,
      this.replicaService,
      this.diskService,
      this.vmService,
      this.nbd,
      this.clock,
      this.log.child({ component: 'failover' }),
    );
    const failovers = this.failoverService;
    await this.failoverService.start();
    // only now are this host's failovers known: a sender of a failed-over relationship is fenced
    this.replicaService.acceptSenders((relationshipId) =>
      failovers.failedOver(relationshipId)
        ? `relationship ${relationshipId} was failed over to this host, which now runs its VM; this primary is fenced: set up reverse replication instead`
        : null,
    );
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
    await this.failoverService?.close();
    this.failoverService = null;
    await this.vmService?.close();
    this.vmService = null;
    await this.relationshipService?.close();
    this.relationshipService = null;
    await this.replicaService?.close();
    this.replicaService = null;
    this.peerHttp?.closeAllConnections();
    this.peerHttp = null;
    await this.nbd.close();
    await this.diskService?.close();
    this.diskService = null;
    this.log.info('host agent stopped', { hostId: this.config.hostId });
  }
}

/**
 * The management server process (`secondsite manager serve`): its own database (fabric; embedded
 * unless a URL is given), its control socket for `secondsite manager ...`, and, once registered, the
 * provider's session with the vault (docs/design/vault.md sections 5-7).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ControlServer } from '../control-api/control-server.js';
import { recoverKeyCertPair } from '../pki/key-cert-pair.js';
import type { Logger } from '../observability/logger.js';
import { openDatabase, type Database } from '../persistence/database.js';
import {
  loadProviderIdentity,
  providerClient,
  providerKeyPair,
  type ProviderIdentity,
} from './provider/provider-registration.js';
import { ProviderSession } from './provider/provider-session.js';
import { DEFAULT_CERTIFICATE_CHECK_MS, ProviderCertificate } from './provider/provider-certificate.js';
import { CommandLoop } from './provider/command-loop.js';
import {
  AuthorizationReconciler,
  DEFAULT_AUTHORIZATION_RECONCILE_MS,
} from './protection/authorization-reconciler.js';
import { registerProtectionCommands } from './protection/protection-commands.js';
import { DEFAULT_STATUS_INTERVAL_MS, StatusReporter } from './protection/status-reporter.js';
import { managerRoutes } from './manager-routes.js';
import { createFabric, fabricRoutes } from './fabric/fabric.routes.js';
import { managementVmRoutes } from './fabric/management-vm.js';
import { DEFAULT_ENROL_LISTEN, EnrolmentListener } from './enrolment/enrolment-listener.js';
import { EnrolmentService } from './enrolment/enrolment.service.js';
import { ensureSiteCa, type SiteCa } from './enrolment/site-ca.js';
import { DEFAULT_POLL_INTERVAL_MS, HostPoller } from './hosts/host-poller.js';
import { hostsRoutes } from './hosts/hosts.routes.js';
import { HostCertificates } from './hosts/host-certificates.js';
import { RepeatingRound } from './repeating-round.js';

/** The control socket `secondsite manager ...` commands talk to. */
export function managerControlSocket(dataDir: string): string {
  return join(dataDir, 'manager.sock');
}

export const PROVIDER_VERSION = '0.1.0';

export interface ManagerServerOptions {
  readonly dataDir: string;
  readonly databaseUrl?: string | undefined;
  readonly log: Logger;
  readonly unsafeFastForTests?: boolean;
  /** Tests: replaces the answer to the vault's `inventory.sync` (default: the fabric sends its inventory now). */
  readonly inventorySync?: InventorySync;
  /** The enrolment listener (default 127.0.0.1:8444; port 0 = any free port). */
  readonly enrolListen?: { host: string; port: number };
  /** The enrolment URL key files carry, when hosts reach the listener by another name (default: as bound). */
  readonly enrolUrl?: string | undefined;
  /** How often the host poller reads every host's inventory (default 10 s). */
  readonly hostPollIntervalMs?: number;
  /** How often the replication status of the hosts is read and, when changed, sent to the vault. */
  readonly statusIntervalMs?: number;
  /** How often the kept authorization lists are pushed to hosts that miss them (default 30 s). */
  readonly authorizationReconcileIntervalMs?: number;
  /** How often the certificates are looked at for renewal (default an hour). */
  readonly certificateCheckIntervalMs?: number;
  /** Renew a certificate when less than this fraction of its lifetime remains (default a third). */
  readonly certificateRemainingFraction?: number;
}

/**
 * Command `inventory.sync` from the vault (its inventory-refresh job): pushes the inventory to the
 * vault when the vault's version differs, and answers the management server's inventory version.
 */
/** The renewal round of the manager's own certificates (manager.site, enrol.manager.site). */
export interface OwnCertificatesStatus {
  lastRenewedAt: string | null;
  lastError: string | null;
}

export type InventorySync = (signal: AbortSignal) => Promise<{ inventoryVersion: number }>;

export class ManagerServer {
  private constructor(
    readonly db: Database,
    readonly identity: ProviderIdentity,
    readonly session: ProviderSession,
    readonly commands: CommandLoop,
    private readonly control: ControlServer,
    private readonly log: Logger,
    readonly enrolmentListener: EnrolmentListener,
    readonly enrolmentService: EnrolmentService,
    readonly hostPoller: HostPoller,
    readonly statusReporter: StatusReporter,
    private readonly authorization: AuthorizationReconciler,
    readonly providerCertificate: ProviderCertificate,
    private readonly ownCertificates: RepeatingRound,
    /** The renewal of the manager's own certificates: when it last renewed, its last error. */
    readonly ownCertificatesStatus: Readonly<OwnCertificatesStatus>,
    readonly hostCertificates: HostCertificates,
  ) {}

  static async start(options: ManagerServerOptions): Promise<ManagerServer> {
    await recoverKeyCertPair(providerKeyPair(options.dataDir)).catch(() => undefined); // a crashed renewal
    const identity = await loadProviderIdentity(options.dataDir); // refuse early: not registered
    await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
    const db = await openDatabase({
      databaseUrl: options.databaseUrl,
      dataDir: options.dataDir,
      component: 'manager',
      ...(options.unsafeFastForTests ? { unsafeFastForTests: true } : {}),
    });
    const r = identity.registration;
    // one client for every call to the vault: a renewed certificate is swapped into it
    const vault = providerClient(identity);
    const providerCertificate = new ProviderCertificate({
      dataDir: options.dataDir,
      registration: r,
      certPem: identity.certPem,
      vaultCaCertPem: identity.vaultCaCertPem,
      client: vault,
      log: options.log.child({ component: 'provider-certificate' }),
      checkIntervalMs: options.certificateCheckIntervalMs ?? DEFAULT_CERTIFICATE_CHECK_MS,
      ...(options.certificateRemainingFraction !== undefined
        ? { remainingFraction: options.certificateRemainingFraction }
        : {}),
    });
    // hosts: the site CA, the enrolment listener, the host poller (docs/design/vault.md section 6)
    const enrolment = new EnrolmentService(
      db,
      () => Promise.resolve(siteCa),
      r.managementServerName,
      (): string => options.enrolUrl ?? listener.url,
    );
    const listener = new EnrolmentListener(enrolment, options.log.child({ component: 'enrolment' }));
    let siteCa: SiteCa;
    const remainingFraction = options.certificateRemainingFraction;
    try {
      siteCa = await ensureSiteCa(options.dataDir, r.managementServerName, remainingFraction);
      await listener.listen(options.enrolListen ?? DEFAULT_ENROL_LISTEN, {
        ...siteCa.enrolmentServer,
        caCertPem: siteCa.caCertPem,
      });
    } catch (e) {
      await db.close();
      throw e;
    }
    // the fabric (host groups, clouds, VM networks...) and its inventory, sent to the vault when the
    // heartbeat's answer shows the vault holds another version
    const fabric = createFabric({
      db,
      dataDir: options.dataDir,
      managementServerName: r.managementServerName,
      log: options.log.child({ component: 'fabric' }),
      vault: { client: vault, managementServerId: r.managementServerId },
    });
    const session = new ProviderSession(
      vault,
      r.managementServerId,
      r.heartbeatIntervalSeconds,
      PROVIDER_VERSION,
      options.log.child({ component: 'provider' }),
      (answer) => fabric.sync?.afterHeartbeat(answer.inventoryVersion) ?? Promise.resolve(),
    );
    session.start();
    providerCertificate.start();
    const commands = new CommandLoop(
      vault,
      r.managementServerId,
      db,
      options.log.child({ component: 'provider-commands' }),
    );
    const inventorySync: InventorySync =
      options.inventorySync ??
      (async () => ({ inventoryVersion: (await fabric.sync?.sendNow())?.inventoryVersion ?? 0 }));
    commands.register('inventory.sync', (_body, ctx) => inventorySync(ctx.signal));
    // protection: authorization lists and relationships on this site's hosts (docs/design/protection.md)
    const authorization = new AuthorizationReconciler(
      db,
      () => Promise.resolve(siteCa),
      options.authorizationReconcileIntervalMs ?? DEFAULT_AUTHORIZATION_RECONCILE_MS,
      options.log.child({ component: 'authorization' }),
    );
    registerProtectionCommands(commands, {
      db,
      siteCa: () => Promise.resolve(siteCa),
      authorization,
      log: options.log.child({ component: 'protection' }),
    });
    authorization.start();
    commands.start();
    const statusReporter = new StatusReporter(
      db,
      () => Promise.resolve(siteCa),
      vault,
      r.managementServerId,
      options.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS,
      options.log.child({ component: 'status-reporter' }),
    );
    statusReporter.start();
    // certificates: the manager's own (site CA, swapped in) and the hosts' (certificate-renewal.md)
    const checkIntervalMs = options.certificateCheckIntervalMs ?? DEFAULT_CERTIFICATE_CHECK_MS;
    const certificateLog = options.log.child({ component: 'certificates' });
    const ownStatus: OwnCertificatesStatus = { lastRenewedAt: null, lastError: null };
    const ownCertificates = new RepeatingRound(async () => {
      try {
        const next = await ensureSiteCa(options.dataDir, r.managementServerName, remainingFraction);
        if (next.enrolmentServer.certPem !== siteCa.enrolmentServer.certPem) {
          listener.updateTls({ ...next.enrolmentServer, caCertPem: next.caCertPem });
        }
        if (
          next.manager.certPem !== siteCa.manager.certPem ||
          next.enrolmentServer.certPem !== siteCa.enrolmentServer.certPem
        ) {
          ownStatus.lastRenewedAt = new Date().toISOString();
          certificateLog.info("manager's certificates renewed");
        }
        siteCa = next;
        ownStatus.lastError = null;
      } catch (e) {
        ownStatus.lastError = (e as Error).message;
        certificateLog.warn("cannot renew the manager's own certificates; the next round tries again", {
          error: ownStatus.lastError,
        });
      }
    }, checkIntervalMs);
    ownCertificates.start(checkIntervalMs);
    const hostCertificates = new HostCertificates(
      db,
      () => Promise.resolve(siteCa),
      { checkIntervalMs, ...(remainingFraction !== undefined ? { remainingFraction } : {}) },
      certificateLog,
    );
    hostCertificates.start();
    const poller = new HostPoller(
      db,
      () => Promise.resolve(siteCa),
      { intervalMs: options.hostPollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS },
      options.log.child({ component: 'host-poller' }),
    );
    poller.start();
    const control = new ControlServer(
      [
        ...managerRoutes({
          db,
          identity,
          session,
          providerCertificate,
          ownCertificates: ownStatus,
          dataDir: options.dataDir,
        }),
        ...hostsRoutes({ db, enrolment, poller, hostCertificates }),
        ...fabricRoutes(fabric),
        ...managementVmRoutes(db),
      ],
      options.log.child({ component: 'control' }),
    );
    await control.listen(managerControlSocket(options.dataDir));
    options.log.info('management server started', {
      managementServerId: r.managementServerId,
      name: r.managementServerName,
      node: r.nodeName,
      vault: r.vaultUrl,
      enrolUrl: listener.url,
    });
    return new ManagerServer(
      db,
      identity,
      session,
      commands,
      control,
      options.log,
      listener,
      enrolment,
      poller,
      statusReporter,
      authorization,
      providerCertificate,
      ownCertificates,
      ownStatus,
      hostCertificates,
    );
  }

  async stop(): Promise<void> {
    await this.control.close();
    await this.statusReporter.stop();
    await this.authorization.stop();
    await this.hostPoller.stop();
    await this.hostCertificates.stop();
    await this.ownCertificates.stop();
    await this.enrolmentListener.close();
    await this.session.stop();
    await this.providerCertificate.stop();
    await this.commands.stop();
    await this.db.close();
    this.log.info('management server stopped');
  }
}

/**
 * The vault process (`secondsite vault serve`, docs/design/vault.md): its database (embedded unless
 * a URL is given), identity and CA, the HTTPS API, and the monitor (lost heartbeats, protection
 * alerts). Several vault processes may run on one database: identity, bootstrap and every state change
 * are single statements or transactions that settle races in the database.
 *
 * Files in the data directory: `vault.json` (URL, vault id: what a CLI on this machine needs),
 * `ca.crt` (trust anchor for clients), `admin.token` (0600, written once, on the first start of a
 * vault on an empty database), `runtime/` (this process's CA copy and server key, 0700), and without
 * a database URL `postgres/`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SecondsiteError } from '../domain/errors.js';
import type { Logger } from '../observability/logger.js';
import { assertHostId } from '../pki/ca.js';
import { MetricsRegistry } from '../observability/metrics.js';
import { openDatabase, type Database } from '../persistence/database.js';
import { appendAudit } from './audit/audit-log.js';
import { authenticator } from './auth/authenticate.js';
import { CommandChannel } from './commands/provider-commands.js';
import { ManagementServersService } from './fabric/management-servers.service.js';
import { alertWebhookWorker } from './monitoring/alert-webhooks.js';
import { reconcileCertificateAlerts } from './monitoring/certificate-alerts.js';
import { monitorProtectionAlerts } from './monitoring/protection-alerts.js';
import type { JobWorker } from '../persistence/jobs/job-worker.js';
import { VaultHttpServer } from './http/vault-http-server.js';
import { ensureVaultIdentity, issueServerTls, type VaultIdentity } from './identity/vault-identity.js';
import { inventoryRefreshJob } from './jobs/inventory-refresh.job.js';
import { authorizationSyncJob } from './protection/authorization-sync.job.js';
import { disableReplicationJob } from './protection/disable-replication.job.js';
import { enableReplicationJob } from './protection/enable-replication.job.js';
import type { AnyJobKind } from './jobs/job-kind.js';
import { JobRunner } from './jobs/job-runner.js';
import {
  checkJobHistoryDays,
  DEFAULT_JOB_HISTORY_DAYS,
  JOB_HISTORY_PRUNE_INTERVAL_MS,
  pruneJobHistory,
} from './jobs/job-history.js';
import { JobsService } from './jobs/jobs.service.js';
import { RegistrationService } from './registration/registration.service.js';
import { UsersService } from './users/users.service.js';
import { vaultRoutes } from './vault-routes.js';

export interface VaultServerOptions {
  readonly dataDir: string;
  readonly databaseUrl?: string | undefined;
  /** Listen address (default 127.0.0.1) and port (0 = any free port). */
  readonly listenHost?: string;
  readonly port?: number;
  /** The host name clients use (certificate CN and the URL in registration keys); default localhost. */
  readonly advertiseHost?: string;
  /** The vault's name, set on the first start of a database. */
  readonly name?: string;
  /** Heartbeat interval given to providers at registration (default 10 s). */
  readonly heartbeatIntervalSeconds?: number;
  /** How often this process looks for lost heartbeats and reconciles protection alerts (default 5000 ms). */
  readonly monitorIntervalMs?: number;
  /** Alerts (raised and resolved) are POSTed here as JSON; none: they are only listed. */
  readonly alertWebhookUrl?: string | undefined;
  /** Lease of a job run (default 30 s): another vault process takes a job over this long after its owner died. */
  readonly jobLeaseMs?: number;
  /** Days a job (and its commands) is kept after it ended (default 30; 1 to 3650; section 7.6). */
  readonly jobHistoryDays?: number;
  readonly log: Logger;
  /** Tests only: a faster, less durable embedded PostgreSQL. */
  readonly unsafeFastForTests?: boolean;
}

export interface VaultEndpointFile {
  readonly url: string;
  readonly vaultId: string;
  readonly name: string;
  readonly caCertPath: string;
}

export class VaultServer {
  private monitor: NodeJS.Timeout | null = null;
  private monitorRun: Promise<void> = Promise.resolve();

  private constructor(
    readonly db: Database,
    readonly identity: VaultIdentity,
    private readonly http: VaultHttpServer,
    readonly url: string,
    readonly managementServers: ManagementServersService,
    private readonly log: Logger,
    private readonly webhooks: JobWorker,
    readonly jobs: JobsService,
    private readonly commands: CommandChannel,
    private readonly runner: JobRunner,
  ) {}

  static async start(options: VaultServerOptions): Promise<VaultServer> {
    const log = options.log;
    // both end up in openssl subjects and the certificate: plain names only
    if (options.advertiseHost !== undefined) assertHostId(options.advertiseHost);
    if (options.name !== undefined && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(options.name)) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `the vault name '${options.name}' is not 1-63 letters, digits, '.', '_' or '-'`,
      );
    }
    const jobHistoryDays = options.jobHistoryDays ?? DEFAULT_JOB_HISTORY_DAYS;
    checkJobHistoryDays(jobHistoryDays);
    await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
    const db = await openDatabase({
      databaseUrl: options.databaseUrl,
      dataDir: options.dataDir,
      component: 'vault',
      ...(options.unsafeFastForTests ? { unsafeFastForTests: true } : {}),
    });
    try {
      const runtime = join(options.dataDir, 'runtime');
      await mkdir(runtime, { recursive: true, mode: 0o700 });
      const identity = await ensureVaultIdentity(db, runtime, options.name ?? 'secondsite');
      const advertiseHost = options.advertiseHost ?? 'localhost';
      const tls = await issueServerTls(identity, runtime, advertiseHost);
      const users = new UsersService(db);
      const tokenFile = join(options.dataDir, 'admin.token');
      if (await users.bootstrapOwner(tokenFile))
        log.info('first start: user admin (Owner) created', { tokenFile });
      const managementServers = new ManagementServersService(db);
      const kinds = new Map<string, AnyJobKind>([
        [inventoryRefreshJob.kind, inventoryRefreshJob],
        [enableReplicationJob.kind, enableReplicationJob],
        [disableReplicationJob.kind, disableReplicationJob],
        [authorizationSyncJob.kind, authorizationSyncJob],
      ]);
      const jobs = new JobsService(db, kinds);
      const commands = new CommandChannel(db);
      await commands.start();
      const runner = new JobRunner({
        db,
        kinds,
        commands,
        log: log.child({ component: 'jobs' }),
        ...(options.jobLeaseMs !== undefined ? { leaseMs: options.jobLeaseMs } : {}),
      });
      let url = '';
      const registration = new RegistrationService(db, identity, () => url);
      const metrics = new MetricsRegistry();
      let requests = 0;
      const http = new VaultHttpServer({
        routes: vaultRoutes({
          db,
          identity,
          users,
          registration,
          managementServers,
          jobs,
          commands,
          heartbeatIntervalSeconds: options.heartbeatIntervalSeconds ?? 10,
          metrics: () => metrics.render(),
        }),
        authenticate: authenticator(db, users),
        audit: async (entry) => {
          requests++;
          await appendAudit(db, entry);
        },
        onError: (e, path) => log.error('vault request failed', { path, error: e }),
      });
      const port = await http.listen(tls, options.listenHost ?? '127.0.0.1', options.port ?? 0);
      url = `https://${advertiseHost}:${port}`;
      if (options.alertWebhookUrl !== undefined) {
        const u = new URL(options.alertWebhookUrl); // throws on a malformed URL, before anything runs
        if (u.protocol !== 'http:' && u.protocol !== 'https:')
          throw new TypeError('the alert webhook must be http(s)');
      }
      const webhooks = alertWebhookWorker(
        db,
        options.alertWebhookUrl,
        log.child({ component: 'alert-webhooks' }),
      );
      const server = new VaultServer(
        db,
        identity,
        http,
        url,
        managementServers,
        log,
        webhooks,
        jobs,
        commands,
        runner,
      );
      webhooks.start();
      runner.start();
      metrics.register('secondsite_vault_up', 'The vault process is running.', 'gauge', () => [
        { labels: { vault: identity.vaultId }, value: 1 },
      ]);
      metrics.register(
        'secondsite_vault_mutating_requests_total',
        'Audited (non-GET) requests.',
        'counter',
        () => [{ labels: {}, value: requests }],
      );
      const caCertPath = join(options.dataDir, 'ca.crt');
      await writeFile(caCertPath, identity.caCertPem);
      const endpoint: VaultEndpointFile = { url, vaultId: identity.vaultId, name: identity.name, caCertPath };
      await writeFile(join(options.dataDir, 'vault.json'), `${JSON.stringify(endpoint, null, 2)}\n`);
      server.startMonitor(options.monitorIntervalMs ?? 5000, jobHistoryDays);
      log.info('vault started', { url, vaultId: identity.vaultId, database: db.displayUrl });
      return server;
    } catch (e) {
      await db.close();
      throw e;
    }
  }

  private startMonitor(intervalMs: number, jobHistoryDays: number): void {
    let lastPruneMs = Number.NEGATIVE_INFINITY;
    this.monitor = setInterval(() => {
      this.monitorRun = this.monitorRun
        .then(async () => {
          // two independent checks: one failing must not skip the other
          const lost = await this.managementServers.markLostHeartbeats().catch((e: unknown) => {
            this.log.error('heartbeat monitor failed', { error: e });
            return [];
          });
          if (lost.length > 0) this.log.warn('management servers lost their heartbeat', { lost });
          const alerts = await monitorProtectionAlerts(this.db).catch((e: unknown) => {
            this.log.error('protection monitor failed', { error: e });
            return { raised: [], resolved: [] };
          });
          if (alerts.raised.length + alerts.resolved.length > 0)
            this.log.info('protection alerts changed', { ...alerts });
          const certificates = await reconcileCertificateAlerts(this.db).catch((e: unknown) => {
            this.log.error('certificate monitor failed', { error: e });
            return { raised: [], resolved: [] };
          });
          if (certificates.raised.length + certificates.resolved.length > 0)
            this.log.info('certificate alerts changed', { ...certificates });
          if (performance.now() - lastPruneMs >= JOB_HISTORY_PRUNE_INTERVAL_MS) {
            lastPruneMs = performance.now();
            const pruned = await pruneJobHistory(this.db, jobHistoryDays);
            if (pruned.jobs + pruned.providerCommands + pruned.queueRows > 0)
              this.log.info('job history pruned', { ...pruned, jobHistoryDays });
          }
        })
        .catch((e: unknown) => this.log.error('job history pruning failed', { error: e }));
    }, intervalMs);
  }

  async stop(): Promise<void> {
    if (this.monitor) clearInterval(this.monitor);
    this.monitor = null;
    await this.monitorRun;
    await this.webhooks.stop({ abort: true });
    await this.runner.stop();
    await this.commands.close();
    await this.http.close();
    await this.db.close();
    this.log.info('vault stopped', { vaultId: this.identity.vaultId });
  }
}

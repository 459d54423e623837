/**
 * Reports this management server's replication status to the vault (protocol/vault-api/
 * replication-status.schema.ts): every interval it reads each connected host's status over the peer
 * API, and sends the whole document when it differs from the last one the vault accepted. A host that
 * does not answer is left out of that round (its items keep their last status, and the vault shows
 * how old it is). Failures are logged once and retried at the next round.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../../observability/logger.js';
import type { Database } from '../../persistence/database.js';
import type { ReplicationStatus } from '../../protocol/vault-api/replication-status.schema.js';
import type { SiteCa } from '../enrolment/site-ca.js';
import type { VaultClient } from '../provider/vault-client.js';
import { RepeatingRound } from '../repeating-round.js';
import { enrolledHostClient } from './host-client.js';

export const DEFAULT_STATUS_INTERVAL_MS = 5_000;

export class StatusReporter {
  private readonly rounds: RepeatingRound;
  private lastSentSha256: string | null = null;
  private lastError: string | null = null;
  reportsSent = 0;

  constructor(
    private readonly db: Database,
    private readonly siteCa: () => Promise<SiteCa>,
    private readonly vault: VaultClient,
    private readonly managementServerId: string,
    intervalMs: number,
    private readonly log: Logger,
  ) {
    this.rounds = new RepeatingRound(() => this.round(), intervalMs);
  }

  start(): void {
    this.rounds.start();
  }

  /** Reads every connected host and sends the status if it changed. */
  async round(): Promise<void> {
    try {
      const status = await this.collect();
      const sha = createHash('sha256').update(JSON.stringify(status)).digest('hex');
      if (sha === this.lastSentSha256) return;
      await this.vault.call(
        'PUT',
        `/v1/management-servers/${encodeURIComponent(this.managementServerId)}/replication-status`,
        status,
      );
      this.lastSentSha256 = sha;
      this.reportsSent++;
      if (this.lastError !== null) this.log.info('replication status reaches the vault again');
      this.lastError = null;
    } catch (e) {
      const message = (e as Error).message;
      if (message !== this.lastError)
        this.log.warn('replication status not sent; retrying', { error: message });
      this.lastError = message;
    }
  }

  private async collect(): Promise<ReplicationStatus> {
    const hosts = await this.db.query<{ host_id: string }>(
      "SELECT host_id FROM hosts WHERE connection_state = 'connected' ORDER BY host_id",
    );
    const ca = await this.siteCa();
    const parts = await Promise.all(
      hosts.rows.map(async ({ host_id }) => {
        try {
          const client = await enrolledHostClient(this.db, ca, host_id, 10_000);
          return await client.get<ReplicationStatus>('/peer/v1/manager/replication-status');
        } catch {
          return { relationships: [], replicas: [] }; // the host poller reports the host's trouble
        }
      }),
    );
    return {
      relationships: parts.flatMap((p) => p.relationships),
      replicas: parts.flatMap((p) => p.replicas),
    };
  }

  stop(): Promise<void> {
    return this.rounds.stop();
  }
}

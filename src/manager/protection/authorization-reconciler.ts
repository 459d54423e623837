/**
 * The authorization lists on this site's hosts (docs/design/protection.md section 7): the vault sends
 * them (`authorization.apply`) when a pairing changes, and a host that is down or unreachable then
 * would keep its old lists (an old trust included) until the next change. So this management server
 * keeps the newest lists it received (table `authorization_lists`, newest revision wins) and, every
 * interval, pushes them to every enrolled host not known to hold that revision: a host that comes back,
 * or one enrolled later, gets them within one interval. Hosts apply a revision once (the same one again
 * changes nothing, an older one is refused), so pushing again is harmless, and a restart of this
 * process pushes each host once.
 */
import type { Logger } from '../../observability/logger.js';
import type { Database } from '../../persistence/database.js';
import type {
  AuthorizationApplyBody,
  AuthorizationApplyResult,
} from '../../protocol/vault-api/protection-commands.schema.js';
import type { SiteCa } from '../enrolment/site-ca.js';
import { RepeatingRound } from '../repeating-round.js';
import { enrolledHostClient } from './host-client.js';

export const DEFAULT_AUTHORIZATION_RECONCILE_MS = 30_000;

export class AuthorizationReconciler {
  /** Host id -> the revision it acknowledged (this process's knowledge; empty after a restart). */
  private readonly held = new Map<string, number>();
  /** Host id -> the last failure logged, so a host that stays down is logged once. */
  private readonly lastFailure = new Map<string, string>();
  private readonly rounds: RepeatingRound;

  constructor(
    private readonly db: Database,
    private readonly siteCa: () => Promise<SiteCa>,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {
    this.rounds = new RepeatingRound(() => this.round(), intervalMs);
  }

  /** The first round after one interval (the vault's command usually comes first). */
  start(): void {
    this.rounds.start(this.intervalMs);
  }

  /** The command: keeps the lists (unless newer ones are kept already) and pushes them to every host. */
  async apply(body: AuthorizationApplyBody): Promise<AuthorizationApplyResult> {
    await this.db.query(
      `INSERT INTO authorization_lists (revision, body) VALUES ($1, $2)
       ON CONFLICT (singleton) DO UPDATE SET revision = EXCLUDED.revision, body = EXCLUDED.body, received_at = now()
       WHERE authorization_lists.revision < EXCLUDED.revision`,
      [body.revision, JSON.stringify(body)],
    );
    return this.push(body, await this.enrolled());
  }

  /** Pushes the kept lists to the enrolled hosts not known to hold their revision. */
  async round(): Promise<void> {
    try {
      const kept = await this.db.query<{ body: AuthorizationApplyBody }>(
        'SELECT body FROM authorization_lists',
      );
      const body = kept.rows[0]?.body;
      if (body === undefined) return;
      const behind = (await this.enrolled()).filter((h) => (this.held.get(h) ?? 0) < body.revision);
      if (behind.length === 0) return;
      const r = await this.push(body, behind);
      if (r.applied.length > 0)
        this.log.info('authorization lists brought up to date', {
          revision: body.revision,
          hosts: r.applied,
        });
    } catch (e) {
      this.log.warn('authorization reconcile failed; retrying', { error: (e as Error).message });
    }
  }

  private async enrolled(): Promise<string[]> {
    return (await this.db.query<{ host_id: string }>('SELECT host_id FROM hosts ORDER BY host_id')).rows.map(
      (r) => r.host_id,
    );
  }

  private async push(
    body: AuthorizationApplyBody,
    hostIds: readonly string[],
  ): Promise<AuthorizationApplyResult> {
    const ca = await this.siteCa();
    const result: AuthorizationApplyResult = { applied: [], failed: [] };
    await Promise.all(
      hostIds.map(async (hostId) => {
        const list = body.hosts.find((h) => h.hostId === hostId);
        try {
          const client = await enrolledHostClient(this.db, ca, hostId);
          await client.call('PUT', '/peer/v1/manager/authorization', {
            revision: body.revision,
            entries: list?.entries ?? [],
            trustGroups: list?.trustGroups ?? [],
          });
          this.acknowledged(hostId, body.revision);
          result.applied.push(hostId);
        } catch (e) {
          const message = (e as Error).message;
          // a host that already holds a newer revision has newer lists: nothing to do
          if (/is older and was not applied/.test(message)) {
            this.acknowledged(hostId, body.revision);
            result.applied.push(hostId);
            return;
          }
          result.failed.push({ hostId, message });
          if (this.lastFailure.get(hostId) !== message) {
            this.lastFailure.set(hostId, message);
            this.log.warn('authorization lists not applied on a host; retrying', { hostId, error: message });
          }
        }
      }),
    );
    result.applied.sort();
    return result;
  }

  private acknowledged(hostId: string, revision: number): void {
    this.held.set(hostId, Math.max(this.held.get(hostId) ?? 0, revision));
    this.lastFailure.delete(hostId);
  }

  stop(): Promise<void> {
    return this.rounds.stop();
  }
}

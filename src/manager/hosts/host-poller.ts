/**
 * The host poller (docs/design/vault.md section 6): every interval (default 10 s) and on request
 * (`POST /v1/hosts/refresh`), the management server reads each enrolled host's inventory from the
 * host's peer API (`GET /peer/v1/manager/inventory`, mutual TLS with the manager's certificate, ALPN
 * `secondsite-peer/1` on the replication port) and records it in `hosts`.
 *
 * A row is UPDATEd only when something in it changes (connection state, error, inventory): a trigger
 * of the fabric counts inventory versions from these updates. `last_contact_at` is written with those
 * changes, and otherwise at most every CONTACT_WRITE_MS; the poller keeps the exact time in memory
 * (`lastContactOf`). A host that does not answer in time, refuses the manager, or answers something
 * that is not its inventory becomes `disconnected` with the reason in `last_error`.
 *
 * One pass at a time: a refresh during a pass waits for it and then runs its own, so it reflects the
 * hosts as they are after the request.
 */
import type { RequestOptions } from 'node:https';
import type { ConnectionOptions, PeerCertificate } from 'node:tls';
import { ControlClient } from '../../control-api/control-client.js';
import { isSecondsiteError, SecondsiteError } from '../../domain/errors.js';
import type { Logger } from '../../observability/logger.js';
import type { Database } from '../../persistence/database.js';
import { hostInventorySchema, type HostInventory } from '../../protocol/host-api/manager-peer.schema.js';
import { PEER_ALPN } from '../../protocol/host-api/peer.schema.js';
import type { SiteCa } from '../enrolment/site-ca.js';

export const DEFAULT_POLL_INTERVAL_MS = 10_000;
export const MANAGER_INVENTORY_PATH = '/peer/v1/manager/inventory';
/** While nothing else changes, `last_contact_at` is written at most this often. */
export const CONTACT_WRITE_MS = 5 * 60_000;
const MAX_PARALLEL_POLLS = 8;

export interface HostPollResult {
  readonly hostId: string;
  readonly connectionState: 'connected' | 'disconnected';
  readonly error: string | null;
  /** The row was updated. */
  readonly changed: boolean;
}

interface HostRow {
  host_id: string;
  replication_address: string;
  replication_port: number;
  connection_state: 'connected' | 'disconnected';
  last_contact_at: Date | null;
  last_error: string | null;
  host_inventory: HostInventory | null;
}

/** JSON with object keys sorted: equal documents (as jsonb returns them or as parsed) compare equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

/** TLS options for calling host `hostId` as the manager (its certificate must name that host). */
export function managerClientTls(
  ca: SiteCa,
  hostId: string,
  timeoutMs: number,
): RequestOptions & Pick<ConnectionOptions, 'ALPNProtocols'> {
  return {
    key: ca.manager.keyPem,
    cert: ca.manager.certPem,
    ca: ca.caCertPem,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
    servername: hostId,
    ALPNProtocols: [PEER_ALPN],
    signal: AbortSignal.timeout(timeoutMs),
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const cn = (cert.subject as unknown as Record<string, unknown> | undefined)?.['CN'];
      const sans = (cert.subjectaltname ?? '').split(',').map((s) => s.trim());
      if (cn !== hostId || !sans.includes(`DNS:${hostId}`)) {
        return new SecondsiteError(
          'SECONDSITE_ERR_UNAUTHORIZED',
          `the host at this address presented a certificate for '${typeof cn === 'string' ? cn : '?'}', not '${hostId}'; check the host's replication address`,
          { expected: hostId },
        );
      }
      return undefined;
    },
  };
}

export class HostPoller {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<HostPollResult[]> | null = null;
  private stopped = false;
  private readonly lastContact = new Map<string, Date>();

  constructor(
    private readonly db: Database,
    private readonly siteCa: () => Promise<SiteCa>,
    private readonly options: { intervalMs: number; timeoutMs?: number },
    private readonly log: Logger,
  ) {}

  /** Polls now and then every interval until `stop()`. */
  start(): void {
    const tick = (): void => {
      this.refresh()
        .catch((e: unknown) => this.log.warn('host poll failed', { error: e }))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  /** The last time `hostId` answered this process (fresher than `last_contact_at`), or undefined. */
  lastContactOf(hostId: string): Date | undefined {
    return this.lastContact.get(hostId);
  }

  /** Polls every enrolled host now (after a pass already running) and returns what each answered. */
  refresh(): Promise<HostPollResult[]> {
    const before = this.running;
    const pass = (async (): Promise<HostPollResult[]> => {
      await before?.catch(() => undefined);
      return this.pass();
    })();
    this.running = pass;
    void pass
      .finally(() => {
        if (this.running === pass) this.running = null;
      })
      .catch(() => undefined);
    return pass;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }

  private async pass(): Promise<HostPollResult[]> {
    const rows = (
      await this.db.query<HostRow>(
        `SELECT host_id, replication_address, replication_port, connection_state, last_contact_at,
                last_error, host_inventory
         FROM hosts ORDER BY host_id`,
      )
    ).rows;
    if (rows.length === 0) return [];
    const ca = await this.siteCa();
    const results: HostPollResult[] = [];
    for (let i = 0; i < rows.length; i += MAX_PARALLEL_POLLS) {
      const batch = rows.slice(i, i + MAX_PARALLEL_POLLS);
      results.push(...(await Promise.all(batch.map((row) => this.pollOne(ca, row)))));
    }
    return results;
  }

  private async pollOne(ca: SiteCa, row: HostRow): Promise<HostPollResult> {
    const now = new Date();
    let inventory: HostInventory | null = null;
    let error: string | null = null;
    try {
      inventory = await this.readInventory(ca, row);
      this.lastContact.set(row.host_id, now);
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    const state = error === null ? 'connected' : 'disconnected';
    const next = {
      state,
      error,
      // a host that does not answer keeps its last inventory
      inventory: inventory ?? row.host_inventory,
    };
    const changed =
      next.state !== row.connection_state ||
      next.error !== row.last_error ||
      canonical(next.inventory) !== canonical(row.host_inventory);
    const contactDue =
      inventory !== null &&
      (row.last_contact_at === null || now.getTime() - row.last_contact_at.getTime() >= CONTACT_WRITE_MS);
    if (changed || contactDue) {
      await this.db.query(
        `UPDATE hosts SET connection_state = $2, last_error = $3, host_inventory = $4,
                last_contact_at = COALESCE($5, last_contact_at)
         WHERE host_id = $1`,
        [
          row.host_id,
          next.state,
          next.error,
          next.inventory === null ? null : JSON.stringify(next.inventory),
          inventory !== null ? now : null,
        ],
      );
      if (next.state !== row.connection_state) {
        this.log.info(`host ${next.state}`, { hostId: row.host_id, error });
      }
    }
    return { hostId: row.host_id, connectionState: state, error, changed: changed || contactDue };
  }

  private async readInventory(ca: SiteCa, row: HostRow): Promise<HostInventory> {
    const timeoutMs = this.options.timeoutMs ?? Math.max(1000, Math.min(this.options.intervalMs, 10_000));
    const where = `${row.replication_address}:${row.replication_port}`;
    const client = ControlClient.peer({
      host: row.replication_address,
      port: row.replication_port,
      hostId: row.host_id,
      tls: managerClientTls(ca, row.host_id, timeoutMs),
    });
    let body: unknown;
    try {
      body = await client.get<unknown>(MANAGER_INVENTORY_PATH);
    } catch (e) {
      if (isSecondsiteError(e)) throw e;
      const err = e as NodeJS.ErrnoException;
      if (err.name === 'AbortError' || err.name === 'TimeoutError') {
        throw new SecondsiteError(
          'SECONDSITE_ERR_TIMEOUT',
          `host ${row.host_id} did not answer at ${where} within ${timeoutMs} ms`,
        );
      }
      if (err.code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(err.code)) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_UNAUTHORIZED',
          `host ${row.host_id} at ${where} presents a certificate this site CA did not issue (${err.code}); restart its agent after 'secondsite host enroll', or enrol it again`,
        );
      }
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || /socket hang up/.test(err.message)) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_CONNECTION_LOST',
          `host ${row.host_id} at ${where} closed the connection: it may not trust this management server (enrol it again) or it restarted`,
        );
      }
      throw new SecondsiteError(
        'SECONDSITE_ERR_CONNECTION_LOST',
        `cannot read the inventory of host ${row.host_id} at ${where}: ${err.message}`,
      );
    }
    const parsed = hostInventorySchema.safeParse(body);
    if (!parsed.success || parsed.data.hostId !== row.host_id) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INTERNAL',
        `host ${row.host_id} at ${where} answered something that is not its inventory`,
      );
    }
    return parsed.data;
  }
}

/**
 * LISTEN on one channel over a dedicated connection (a pooled connection cannot hold a LISTEN), for
 * prompt wake-ups; never for correctness. Notifications can be missed (while reconnecting, or before
 * the LISTEN took effect), so every user also polls. The connection is reopened after a failure,
 * every `retryMs`, until `close()`.
 */
import pg from 'pg';

export interface Listener {
  /** Stops listening and closes the connection. Idempotent. */
  close(): Promise<void>;
}

/** Calls `onNotify(payload)` for each NOTIFY on `channel` (a plain lowercase identifier). */
export async function listenForNotifications(
  url: string,
  channel: string,
  onNotify: (payload: string) => void,
  retryMs = 1000,
): Promise<Listener> {
  if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`invalid channel name '${channel}'`);
  let closed = false;
  let client: pg.Client | null = null;
  let retry: NodeJS.Timeout | null = null;

  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: url });
    c.on('notification', (m) => {
      if (m.channel === channel) onNotify(m.payload ?? '');
    });
    const lost = (): void => {
      if (client !== c) return;
      client = null;
      c.end().catch(() => {});
      if (!closed) retry = setTimeout(() => void connect().catch(() => lost()), retryMs);
    };
    c.on('error', lost);
    c.on('end', lost);
    client = c;
    await c.connect();
    await c.query(`LISTEN ${channel}`);
  };

  await connect();
  return {
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      const c = client;
      client = null;
      await c?.end().catch(() => {});
    },
  };
}

/**
 * Fabric writes run one at a time: each takes one transaction-scoped advisory lock first, so the
 * checks that span rows (no two clouds cover one host group, a name is free, a host group is unused)
 * see every committed write before theirs. The fabric is changed by people, rarely; the host
 * poller's updates of `hosts` do not take the lock (no fabric rule reads what it writes).
 */
import type { Database, Queryable } from '../../persistence/database.js';

/** pg_advisory_xact_lock key of the manager's fabric ('SSFA' as an int). */
const FABRIC_LOCK_KEY = 0x53534641;

export function fabricWrite<T>(db: Database, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [FABRIC_LOCK_KEY]);
    return fn(tx);
  });
}

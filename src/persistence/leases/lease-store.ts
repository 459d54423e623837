/**
 * Named leases in PostgreSQL (table `leases`, migration 0001): "one process at a time does X" across
 * processes sharing the database (e.g. one vault runs the heartbeat sweeper), with expiry on the
 * database clock and a fencing token.
 *
 * `acquire` succeeds when the lease is free, expired, or already ours; the token grows by one each
 * time the lease passes to another owner, so writes fenced by the token (compare it in the same
 * transaction) are refused for an old holder. `renew` and `release` name the token; `renew` throws
 * LEASE_LOST once someone else holds it.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Queryable } from '../database.js';

export interface HeldLease {
  readonly name: string;
  readonly owner: string;
  /** Fencing token: larger for every later holder. */
  readonly token: number;
  readonly expiresAt: Date;
}

interface LeaseRow {
  name: string;
  owner: string;
  token: string;
  expires_at: Date;
}

/** Takes the lease for `ttlMs` if free, expired or ours; null if another owner holds it. */
export async function acquireLease(
  db: Queryable,
  name: string,
  owner: string,
  ttlMs: number,
): Promise<HeldLease | null> {
  const { rows } = await db.query<LeaseRow>(
    `INSERT INTO leases AS l (name, owner, token, expires_at)
     VALUES ($1, $2, 1, now() + make_interval(secs => $3::double precision / 1000))
     ON CONFLICT (name) DO UPDATE SET
       token = CASE WHEN l.owner = EXCLUDED.owner THEN l.token ELSE l.token + 1 END,
       acquired_at = CASE WHEN l.owner = EXCLUDED.owner THEN l.acquired_at ELSE now() END,
       owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
     WHERE l.owner = EXCLUDED.owner OR l.expires_at <= now()
     RETURNING name, owner, token, expires_at`,
    [name, owner, ttlMs],
  );
  return rows[0] ? toLease(rows[0]) : null;
}

/** Extends a held lease to `ttlMs` from now; LEASE_LOST if it passed to someone else. */
export async function renewLease(db: Queryable, lease: HeldLease, ttlMs: number): Promise<HeldLease> {
  const { rows } = await db.query<LeaseRow>(
    `UPDATE leases SET expires_at = now() + make_interval(secs => $4::double precision / 1000)
     WHERE name = $1 AND owner = $2 AND token = $3
     RETURNING name, owner, token, expires_at`,
    [lease.name, lease.owner, lease.token, ttlMs],
  );
  if (!rows[0]) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_LEASE_LOST',
      `the lease '${lease.name}' (token ${lease.token}) of ${lease.owner} passed to another owner after it expired; stop what it guarded.`,
      { name: lease.name, owner: lease.owner, token: lease.token },
    );
  }
  return toLease(rows[0]);
}

/**
 * Gives the lease up if still held with this token (it expires now; the row stays so the next holder's
 * token is still larger); true if it was held.
 */
export async function releaseLease(db: Queryable, lease: HeldLease): Promise<boolean> {
  const sql =
    'UPDATE leases SET expires_at = now() WHERE name = $1 AND owner = $2 AND token = $3 AND expires_at > now()';
  const { rowCount } = await db.query(sql, [lease.name, lease.owner, lease.token]);
  return rowCount > 0;
}

function toLease(r: LeaseRow): HeldLease {
  return { name: r.name, owner: r.owner, token: Number(r.token), expiresAt: r.expires_at };
}

/**
 * PostgreSQL error classification (SQLSTATE codes), so callers test meanings instead of strings.
 */

/** The SQLSTATE of a pg error, or undefined. */
export function sqlState(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** serialization_failure or deadlock_detected: the transaction may succeed when run again. */
export function isRetryableTransactionError(e: unknown): boolean {
  const state = sqlState(e);
  return state === '40001' || state === '40P01';
}

/** unique_violation */
export function isUniqueViolation(e: unknown): boolean {
  return sqlState(e) === '23505';
}

/**
 * foreign_key_violation (a row still references the one deleted, or the referenced row is absent) or
 * restrict_violation (the same from an ON DELETE RESTRICT key).
 */
export function isForeignKeyViolation(e: unknown): boolean {
  const state = sqlState(e);
  return state === '23503' || state === '23001';
}

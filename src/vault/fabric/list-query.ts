/**
 * Query parameters of the vault's list routes: `limit` (default 100, at most 1000), `after` (the
 * `next` cursor of the previous page) and text filters. A value too long or holding a NUL is refused
 * with a 400 (PostgreSQL text cannot hold U+0000).
 */
import { SecondsiteError } from '../../domain/errors.js';

const MAX_QUERY_VALUE_CHARS = 300;

/** The parameter's value, or undefined when absent or empty. */
export function queryText(query: URLSearchParams, name: string): string | undefined {
  const v = query.get(name);
  if (v === null || v === '') return undefined;
  if (v.length > MAX_QUERY_VALUE_CHARS || v.includes('\u0000')) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `?${name}= is at most ${MAX_QUERY_VALUE_CHARS} characters, without NUL`,
    );
  }
  return v;
}

export function pageRequest(query: URLSearchParams): { limit: number; after?: string } {
  const text = queryText(query, 'limit');
  const n = Number(text ?? 100);
  if (!Number.isInteger(n) || n < 1 || n > 1000) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `?limit=${text ?? ''} is not a page size; use a whole number from 1 to 1000`,
    );
  }
  const after = queryText(query, 'after');
  return after === undefined ? { limit: n } : { limit: n, after };
}

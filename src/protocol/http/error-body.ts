/**
 * The error body every JSON API here answers with, `{ error: { code, message, details } }`, turned
 * back into a SecondsiteError by the clients, so a caller sees the server's code and message as is.
 */
import { type ErrorCode, ERROR_REGISTRY, SecondsiteError } from '../../domain/errors.js';

export function errorFromBody(status: number, body: unknown, who: string): SecondsiteError {
  const err = (
    body as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | undefined
  )?.error;
  const code = (err?.code && err.code in ERROR_REGISTRY ? err.code : 'SECONDSITE_ERR_INTERNAL') as ErrorCode;
  return new SecondsiteError(code, err?.message ?? `${who} answered ${status}`, err?.details ?? {});
}

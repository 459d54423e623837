import { isSecondsiteError } from '../domain/errors.js';
import type { CommandIo } from './command.js';

/** Prints an error as people read it (code, message, what to do) or as JSON for scripts. */
export function reportError(io: CommandIo, e: unknown, json: boolean): number {
  if (isSecondsiteError(e)) {
    if (json) io.err(JSON.stringify({ error: e.toJSON() }));
    else io.err(`error ${e.code}: ${e.message}`);
    return 2;
  }
  const message = e instanceof Error ? e.message : String(e);
  if (json) io.err(JSON.stringify({ error: { code: 'SECONDSITE_ERR_INTERNAL', message } }));
  else io.err(`error: ${message}`);
  return 1;
}

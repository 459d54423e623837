/**
 * How `secondsite manager ...` commands find the management server: its data folder (`--data-dir`,
 * else $SECONDSITE_MANAGER_DIR, else ./.data/manager) and, for a running one, its control socket
 * there. One place for the three command files that talk to it.
 */
import { resolve } from 'node:path';
import { ControlClient } from '../control-api/control-client.js';
import { isSecondsiteError, SecondsiteError } from '../domain/errors.js';
import { managerControlSocket } from '../manager/manager-server.js';

export const MANAGER_DATA_DIR_HELP =
  "  --data-dir DIR    the management server's data folder (default $SECONDSITE_MANAGER_DIR or ./.data/manager)";

export function managerDataDir(given: string | undefined): string {
  return resolve(given ?? process.env['SECONDSITE_MANAGER_DIR'] ?? '.data/manager');
}

/** Calls the running management server; one that does not run says how to start it. */
export async function callManager<T>(
  given: string | undefined,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const socket = managerControlSocket(managerDataDir(given));
  try {
    return await new ControlClient(socket).call<T>(method, path, body);
  } catch (e) {
    if (!isSecondsiteError(e, 'SECONDSITE_ERR_CONNECTION_LOST')) throw e;
    throw new SecondsiteError(
      'SECONDSITE_ERR_CONNECTION_LOST',
      `the management server is not running (no answer on ${socket}); start it with 'secondsite manager serve${given ? ` --data-dir ${given}` : ''}'`,
      { socketPath: socket },
    );
  }
}

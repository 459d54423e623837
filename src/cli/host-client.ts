/** Finding and calling the local host agent from the CLI. */
import { join, resolve } from 'node:path';
import { ControlClient } from '../control-api/control-client.js';
import { loadHostConfig } from '../host/agent/host-config.js';

export const STATE_DIR_HELP =
  "  --state-dir DIR   the host's state folder (default: $SECONDSITE_HOST_DIR or ./.data/host)";

export function defaultStateDir(given: string | undefined): string {
  return resolve(given ?? process.env['SECONDSITE_HOST_DIR'] ?? join('.data', 'host'));
}

export async function clientFor(stateDir: string): Promise<ControlClient> {
  const config = await loadHostConfig(stateDir);
  return new ControlClient(config.controlSocket);
}

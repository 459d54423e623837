/**
 * `secondsite host authorization show | set`: this host's authorization list (which primary hosts may
 * replicate into which storage location, trusted through which CA). host.json holds the local
 * entries; `set` replaces the managed part, which a management server normally keeps for its hosts
 * (docs/design/vault.md section 6.2).
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { SecondsiteError } from '../domain/errors.js';
import type { AuthorizationView } from '../protocol/host-api/authorization.schema.js';
import { optionalString, parseCommandArgs } from './args.js';
import type { Command } from './command.js';
import { clientFor, defaultStateDir } from './host-client.js';
import { simple, STATE, table } from './simple-command.js';

function render(v: AuthorizationView): string {
  const entries =
    v.entries.length === 0
      ? 'no authorization entries: no primary host may replicate to this host'
      : table([
          ['PRIMARY HOST', 'STORAGE LOCATION', 'TRUST GROUP', 'FROM'],
          ...v.entries.map((e) => [e.primaryHostId, e.storageLocation, e.trustGroup, e.source]),
        ]);
  const groups = table([
    ['TRUST GROUP', 'CA', 'FINGERPRINT (SHA-256)'],
    ...v.trustGroups.map((g) => [g.name, g.source, g.caFingerprints.join(' ') || '(no certificate yet)']),
  ]);
  return `${entries}\n\n${groups}\n\nmanaged revision: ${v.revision || 'none'}`;
}

const showHelp = `usage: secondsite host authorization show [--state-dir DIR] [--output json]

Shows the primary hosts allowed to replicate into this host's storage locations, and the CAs each
trust group accepts (host.json's entries use this host's own CA).`;

const show = simple(
  ['authorization', 'show'],
  'show which primary hosts may replicate to this host',
  showHelp,
  (client) => client.get('/v1/authorization'),
  (r) => render(r as AuthorizationView),
  false,
);

const setHelp = `usage: secondsite host authorization set --file FILE [--state-dir DIR] [--output json]

Replaces the managed part of the authorization list with FILE (JSON):
  { "revision": 2,
    "entries": [ { "primaryHostId": "host-a1", "storageLocation": "gold", "trustGroup": "site-a" } ],
    "trustGroups": [ { "name": "site-a", "caCertPem": "-----BEGIN CERTIFICATE-----..." } ] }
Each entry's trust group must be defined in the file; a host of that group is accepted only with a
certificate from the group's CA. The revision must not be lower than the one the host holds. Nothing
changes when the file is refused. A management server keeps this list for its hosts: set it by hand
only for hosts without one.`;

const set: Command = {
  path: ['authorization', 'set'],
  summary: 'replace the managed authorization list (entries and trust groups) from a file',
  help: setHelp,
  async run(args, io) {
    const p = parseCommandArgs(args, { ...STATE, file: { type: 'string' } }, setHelp);
    const file = optionalString(p, 'file');
    if (!file) return (io.err(`error: --file is missing\n\n${setHelp}`), 2);
    let body: unknown;
    try {
      body = JSON.parse(await readFile(resolve(file), 'utf8'));
    } catch (e) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `cannot read ${file} as JSON: ${(e as Error).message}`,
        { file },
      );
    }
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const view = await client.call<AuthorizationView>('PUT', '/v1/authorization', body);
    io.out(p.json ? JSON.stringify(view) : render(view));
    return 0;
  },
};

export const authorizationCommands: Command[] = [show, set];

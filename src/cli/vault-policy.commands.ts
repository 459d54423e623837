/**
 * `secondsite vault policy create|list|show|update|delete`: replication policies (docs/design/vault.md
 * section 6). The CLI only turns flags into the API's fields (5m -> 300 s, 4h -> 4); the vault checks
 * every rule (domain/vault/replication-policy.ts), so its messages are the same from the CLI and the
 * API. vault.commands.ts passes its `clientCommand` helper in (importing it here would be a cycle).
 */
import { SecondsiteError } from '../domain/errors.js';
import { formatCopyFrequency } from '../domain/vault/replication-policy.js';
import type { VaultClient } from '../manager/provider/vault-client.js';
import type { PolicyView } from '../protocol/vault-api/policies.schema.js';
import { optionalString, type Parsed } from './args.js';
import type { Command, CommandIo } from './command.js';
import { table } from './simple-command.js';

/** The shape of vault.commands.ts's `clientCommand`. */
export type ClientCommandFactory = (
  path: string[],
  summary: string,
  usage: string,
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>,
  call: (client: VaultClient, p: Parsed, io: CommandIo) => Promise<{ json: unknown; text: string }>,
) => Command;

const COPY_FREQUENCY: Readonly<Record<string, number>> = {
  '30s': 30,
  '5m': 300,
  '15m': 900,
  continuous: 0,
  '30': 30,
  '300': 300,
  '900': 900,
  '0': 0,
};

function copyFrequencySeconds(text: string): number {
  const v = COPY_FREQUENCY[text.trim()];
  if (v === undefined) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `--copy-frequency '${text}' is not a copy frequency; use 30s, 5m, 15m or continuous`,
    );
  }
  return v;
}

/** '4h', '4' -> 4; '0' or 'off' -> 0. Ranges are the vault's to check. */
function hours(text: string, flag: string): number {
  const t = text.trim();
  if (t === 'off') return 0;
  const m = /^(\d{1,6})h?$/.exec(t);
  if (!m) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `--${flag} '${text}' is not a whole number of hours; use e.g. 4h, 24, or 0`,
    );
  }
  return Number(m[1]);
}

function wholeNumber(text: string, flag: string): number {
  if (!/^\d{1,6}$/.test(text.trim())) {
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `--${flag} '${text}' is not a whole number`);
  }
  return Number(text);
}

const SETTING_OPTIONS: Record<string, { type: 'string' | 'boolean' }> = {
  description: { type: 'string' },
  'copy-frequency': { type: 'string' },
  'retention-hours': { type: 'string' },
  'app-consistent-frequency': { type: 'string' },
  compression: { type: 'boolean' },
  'no-compression': { type: 'boolean' },
  port: { type: 'string' },
  initial: { type: 'string' },
  'export-path': { type: 'string' },
  'import-path': { type: 'string' },
  'start-at': { type: 'string' },
  'delete-replica-on-disable': { type: 'boolean' },
  'keep-replica-on-disable': { type: 'boolean' },
  resync: { type: 'string' },
  'resync-window': { type: 'string' },
};

const SETTINGS_HELP = `  --description TEXT               what the policy is for
  --copy-frequency 30s|5m|15m|continuous
                                   how often changes are copied (default 5m)
  --retention-hours N              hours of recovery points kept besides the latest, 0-720
                                   (default 24; 0 keeps only the latest point)
  --app-consistent-frequency Nh    hours between app-consistent points, 1-12, less than the
                                   retention; 0 or off: none (default off)
  --no-compression, --compression  compress replication traffic (default on)
  --port N                         replication port on the replica hosts (default 8084)
  --initial network|offline        initial replication over the network (default), or offline:
                                   exported to --export-path on the primary, carried, imported
                                   from --import-path on the replica (absolute paths)
  --start-at now|TIME              when initial replication starts: now (default) or an ISO 8601
                                   time with a zone, e.g. 2026-11-23T22:00:00Z
  --delete-replica-on-disable      delete the replica VM when replication is disabled
  --keep-replica-on-disable        keep it (default)
  --resync automatic|manual|window when a resync after an unclean stop runs: at once (default),
                                   when an operator asks, or inside the resync window
  --resync-window HH:MM-HH:MM      the daily UTC window, e.g. 22:00-06:00 (implies --resync window)`;

/** The API fields the flags give (only those given). */
function settingsFrom(p: Parsed): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const str = (flag: string): string | undefined => optionalString(p, flag);
  const flag = (name: string): boolean => p.values[name] === true;
  const both = (a: string, b: string): void => {
    if (flag(a) && flag(b))
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `give --${a} or --${b}, not both`);
  };
  both('compression', 'no-compression');
  both('delete-replica-on-disable', 'keep-replica-on-disable');
  const description = str('description');
  if (description !== undefined) out['description'] = description;
  const freq = str('copy-frequency');
  if (freq !== undefined) out['copyFrequencySeconds'] = copyFrequencySeconds(freq);
  const retention = str('retention-hours');
  if (retention !== undefined) out['retentionHours'] = hours(retention, 'retention-hours');
  const app = str('app-consistent-frequency');
  if (app !== undefined) out['appConsistentFrequencyHours'] = hours(app, 'app-consistent-frequency');
  if (flag('compression')) out['compression'] = true;
  if (flag('no-compression')) out['compression'] = false;
  const port = str('port');
  if (port !== undefined) out['replicationPort'] = wholeNumber(port, 'port');
  const initial = str('initial');
  if (initial !== undefined) out['initialReplicationMethod'] = initial;
  const exportPath = str('export-path');
  if (exportPath !== undefined) out['offlineExportPath'] = exportPath;
  const importPath = str('import-path');
  if (importPath !== undefined) out['offlineImportPath'] = importPath;
  const startAt = str('start-at');
  if (startAt !== undefined) out['initialReplicationStartAt'] = startAt;
  if (flag('delete-replica-on-disable')) out['deleteReplicaOnDisable'] = true;
  if (flag('keep-replica-on-disable')) out['deleteReplicaOnDisable'] = false;
  const window = str('resync-window');
  const resync = str('resync') ?? (window !== undefined ? 'window' : undefined);
  if (resync !== undefined) out['resyncMode'] = resync;
  if (window !== undefined) out['resyncWindow'] = window;
  return out;
}

function nameArg(p: Parsed, usage: string): string {
  const name = p.positionals[0];
  if (!name)
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `the policy NAME is missing\n\n${usage}`);
  if (p.positionals.length > 1) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `one policy NAME, not '${p.positionals.join(' ')}'\n\n${usage}`,
    );
  }
  return name;
}

const appConsistent = (h: number): string => (h === 0 ? 'off' : `every ${h} h`);
const initial = (v: PolicyView): string =>
  v.initialReplicationMethod === 'network'
    ? `network, ${v.initialReplicationStartAt}`
    : `offline (export ${v.offlineExportPath ?? '?'}, import ${v.offlineImportPath ?? '?'}), ${v.initialReplicationStartAt}`;
const resyncText = (v: PolicyView): string =>
  v.resyncMode === 'window' ? `window ${v.resyncWindow ?? '?'} UTC` : v.resyncMode;

/** The policy as `key: value` lines. */
export function renderPolicy(v: PolicyView): string {
  return [
    ['policy', v.name],
    ['description', v.description || '-'],
    ['copy frequency', formatCopyFrequency(v.copyFrequencySeconds)],
    ['retention', v.retentionHours === 0 ? 'latest point only' : `${v.retentionHours} h`],
    ['app-consistent points', appConsistent(v.appConsistentFrequencyHours)],
    ['compression', v.compression ? 'on' : 'off'],
    ['replication port', String(v.replicationPort)],
    ['initial replication', initial(v)],
    ['on disable', v.deleteReplicaOnDisable ? 'delete the replica' : 'keep the replica'],
    ['resync', resyncText(v)],
    ['id', v.policyId],
    ['updated', v.updatedAt],
  ]
    .map(([k, val]) => `${`${k}:`.padEnd(23)}${val}`)
    .join('\n');
}

const path = (name: string): string => `/v1/policies/${encodeURIComponent(name)}`;

/** The policy commands, built with vault.commands.ts's `clientCommand`. */
export function policyCommands(clientCommand: ClientCommandFactory): Command[] {
  const createUsage = `usage: secondsite vault policy create NAME [settings]

Creates a replication policy, which a cloud pairing applies to every VM it protects. Running the
same command again is harmless; a policy of that name with other settings is refused (use
'policy update'). Needs the Contributor or Owner role.

${SETTINGS_HELP}

example:
  secondsite vault policy create gold --copy-frequency 30s --retention-hours 24 \\
    --app-consistent-frequency 4h --resync window --resync-window 22:00-06:00`;
  const create = clientCommand(
    ['policy', 'create'],
    'create a replication policy',
    createUsage,
    SETTING_OPTIONS,
    async (client, p) => {
      const name = nameArg(p, createUsage);
      const v = await client.post<PolicyView>('/v1/policies', { name, ...settingsFrom(p) });
      return { json: v, text: renderPolicy(v) };
    },
  );

  const list = clientCommand(
    ['policy', 'list'],
    'list replication policies',
    'usage: secondsite vault policy list',
    {},
    async (client) => {
      const { policies } = await client.get<{ policies: PolicyView[] }>('/v1/policies');
      return {
        json: policies,
        text: policies.length
          ? table([
              ['POLICY', 'COPY', 'RETENTION', 'APP-CONSISTENT', 'COMPRESSION', 'INITIAL', 'RESYNC'],
              ...policies.map((v) => [
                v.name,
                formatCopyFrequency(v.copyFrequencySeconds),
                `${v.retentionHours} h`,
                appConsistent(v.appConsistentFrequencyHours),
                v.compression ? 'on' : 'off',
                v.initialReplicationMethod,
                resyncText(v),
              ]),
            ])
          : "no replication policy yet; create one with 'secondsite vault policy create NAME'",
      };
    },
  );

  const showUsage = 'usage: secondsite vault policy show NAME';
  const show = clientCommand(
    ['policy', 'show'],
    'one replication policy',
    showUsage,
    {},
    async (client, p) => {
      const v = await client.get<PolicyView>(path(nameArg(p, showUsage)));
      return { json: v, text: renderPolicy(v) };
    },
  );

  const updateUsage = `usage: secondsite vault policy update NAME [settings]

Changes the settings given; the others keep their values. A policy cannot be renamed. Choosing
--resync automatic or manual drops a stored window; --initial network drops the offline paths.

${SETTINGS_HELP}`;
  const update = clientCommand(
    ['policy', 'update'],
    'change a replication policy',
    updateUsage,
    SETTING_OPTIONS,
    async (client, p) => {
      const name = nameArg(p, updateUsage);
      const settings = settingsFrom(p);
      if (Object.keys(settings).length === 0) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `nothing to change: give at least one setting\n\n${updateUsage}`,
        );
      }
      const v = await client.call<PolicyView>('PUT', path(name), settings);
      return { json: v, text: renderPolicy(v) };
    },
  );

  const deleteUsage = 'usage: secondsite vault policy delete NAME';
  const remove = clientCommand(
    ['policy', 'delete'],
    'delete a replication policy',
    deleteUsage,
    {},
    async (client, p) => {
      const name = nameArg(p, deleteUsage);
      const r = await client.delete<{ name: string; deleted: boolean }>(path(name));
      return { json: r, text: `replication policy ${name} deleted` };
    },
  );

  return [create, list, show, update, remove];
}

/**
 * `secondsite vault ...`: run the vault, and the client commands of what exists so far (users and
 * tokens, registration keys, management servers, alerts, audit). docs/design/vault.md.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { SecondsiteError } from '../domain/errors.js';
import { ROLES } from '../domain/vault/rbac.js';
import { stderrLogger } from '../observability/logger.js';
import type {
  AlertView,
  ManagementServerView,
  RegistrationKeyFile,
} from '../protocol/vault-api/vault-api.schema.js';
import { DEFAULT_JOB_HISTORY_DAYS, MAX_JOB_HISTORY_DAYS } from '../vault/jobs/job-history.js';
import type { UserView } from '../vault/users/users.service.js';
import { VaultServer } from '../vault/vault-server.js';
import { optionalString, parseCommandArgs, parseIntOption, requireString, type Parsed } from './args.js';
import type { Command, CommandGroup, CommandIo } from './command.js';
import { logLevelOf, untilSignalled } from './serve-options.js';
import { table } from './simple-command.js';
import { CONNECTION_HELP, CONNECTION_OPTIONS, vaultClientFrom } from './vault-connection.js';
import { jobCommands } from './vault-job.commands.js';
import { fabricCommands } from './vault-fabric.commands.js';
import { mappingCommands, pairingCommands } from './vault-pairing.commands.js';
import { itemCommands } from './vault-item.commands.js';
import { policyCommands } from './vault-policy.commands.js';
import type { VaultClient } from '../manager/provider/vault-client.js';

export function defaultVaultDir(given: string | undefined): string {
  return resolve(given ?? process.env['SECONDSITE_VAULT_DIR'] ?? '.data/vault');
}

const serveHelp = `usage: secondsite vault serve [--data-dir DIR] [--listen HOST:PORT] [--advertise-host NAME]
                            [--name NAME] [--heartbeat-interval SECONDS] [--log-level LEVEL]

Runs the vault in the foreground until SIGINT or SIGTERM: the REST API (HTTPS, OpenAPI at
/openapi.json), and its workers. State is in PostgreSQL: with DATABASE_URL set, that database;
otherwise a private PostgreSQL in DIR/postgres. Several vault processes may share one database.
On the first start on an empty database it creates the user admin (Owner) and writes its API token
to DIR/admin.token (mode 0600). Prints one JSON line on stdout when ready ({"ready":true,"url":...}).

  --data-dir DIR            default $SECONDSITE_VAULT_DIR or ./.data/vault
  --listen HOST:PORT        default 127.0.0.1:8443 (port 0: any free port)
  --advertise-host NAME     the name clients use for this vault (certificate and key files);
                            default localhost
  --name NAME               the vault's name (first start only; default secondsite)
  --heartbeat-interval S    the heartbeat interval given to providers (default 10)
  --alert-webhook URL       POST every alert (raised, resolved) as JSON to this URL, retried until it
                            answers 2xx [SECONDSITE_ALERT_WEBHOOK]
  --job-lease-seconds S     how long a job run's lease lasts (default 30): another vault process
                            continues a job this long after the process running it died
  --job-history-days N      keep a job (tasks, events, provider commands) N days after it ended,
                            then delete it (default 30, up to 3650); checked once an hour`;

function parseListen(text: string | undefined): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(text ?? '127.0.0.1:8443');
  const port = Number(m?.[2]);
  if (!m || port > 65535) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `--listen must be HOST:PORT, e.g. 127.0.0.1:8443, not '${text ?? ''}'`,
    );
  }
  return { host: m[1] as string, port };
}

function webhookUrl(text: string | undefined): string | undefined {
  if (text === undefined || text === '') return undefined;
  let u: URL | null = null;
  try {
    u = new URL(text);
  } catch {
    u = null;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `--alert-webhook must be an http(s) URL, not '${text}'`,
    );
  }
  return text;
}

const serve: Command = {
  path: ['serve'],
  summary: 'run the vault (API and workers)',
  help: serveHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      {
        'data-dir': { type: 'string' },
        listen: { type: 'string' },
        'advertise-host': { type: 'string' },
        name: { type: 'string' },
        'heartbeat-interval': { type: 'string' },
        'alert-webhook': { type: 'string' },
        'job-lease-seconds': { type: 'string' },
        'job-history-days': { type: 'string' },
        'log-level': { type: 'string' },
      },
      serveHelp,
    );
    const listen = parseListen(optionalString(p, 'listen'));
    const dataDir = defaultVaultDir(optionalString(p, 'data-dir'));
    const name = optionalString(p, 'name');
    const advertiseHost = optionalString(p, 'advertise-host');
    const vault = await VaultServer.start({
      dataDir,
      databaseUrl: process.env['DATABASE_URL'],
      listenHost: listen.host,
      port: listen.port,
      ...(advertiseHost ? { advertiseHost } : {}),
      ...(name ? { name } : {}),
      alertWebhookUrl: webhookUrl(
        optionalString(p, 'alert-webhook') ?? process.env['SECONDSITE_ALERT_WEBHOOK'],
      ),
      heartbeatIntervalSeconds: parseIntOption(
        optionalString(p, 'heartbeat-interval'),
        'heartbeat-interval',
        1,
        3600,
        10,
      ),
      jobLeaseMs:
        1000 * parseIntOption(optionalString(p, 'job-lease-seconds'), 'job-lease-seconds', 1, 3600, 30),
      jobHistoryDays: parseIntOption(
        optionalString(p, 'job-history-days'),
        'job-history-days',
        1,
        MAX_JOB_HISTORY_DAYS,
        DEFAULT_JOB_HISTORY_DAYS,
      ),
      log: stderrLogger(logLevelOf(p), { role: 'vault' }),
    });
    io.out(
      JSON.stringify({
        ready: true,
        url: vault.url,
        vaultId: vault.identity.vaultId,
        dataDir,
        caCertPath: `${dataDir}/ca.crt`,
        adminTokenPath: `${dataDir}/admin.token`,
      }),
    );
    await untilSignalled();
    await vault.stop();
    return 0;
  },
};

/** A client command: parse, connect, call, print text or JSON. */
function clientCommand(
  path: string[],
  summary: string,
  usage: string,
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>,
  call: (client: VaultClient, p: Parsed, io: CommandIo) => Promise<{ json: unknown; text: string }>,
): Command {
  const help = `${usage}\n\n${CONNECTION_HELP}\n  --output json     JSON for scripts`;
  return {
    path,
    summary,
    help,
    async run(args, io) {
      const p = parseCommandArgs(args, { ...CONNECTION_OPTIONS, ...options }, help);
      const r = await call(await vaultClientFrom(p), p, io);
      io.out(p.json ? JSON.stringify(r.json) : r.text);
      return 0;
    },
  };
}

const keyCreate = clientCommand(
  ['key', 'create'],
  'create a registration key file for a management server',
  `usage: secondsite vault key create [--out FILE] [--expires-in-hours N]

Writes a registration key file (mode 0600) for 'secondsite manager register --key FILE'. A key is
single-use, only the newest one is valid (this makes older unused keys useless), and it expires
after --expires-in-hours (default and most: 120, five days).

  --out FILE               where to write it (default ./<vault name>.vaultcredentials)`,
  { out: { type: 'string' }, 'expires-in-hours': { type: 'string' } },
  async (client, p) => {
    const key = await client.post<RegistrationKeyFile>('/v1/registration-keys', {
      expiresInHours: parseIntOption(optionalString(p, 'expires-in-hours'), 'expires-in-hours', 1, 120, 120),
    });
    const out = resolve(optionalString(p, 'out') ?? `${key.vaultName}.vaultcredentials`);
    await writeFile(out, `${JSON.stringify(key, null, 2)}\n`, { mode: 0o600 });
    await chmod(out, 0o600); // an existing file keeps its mode through writeFile
    return {
      json: { keyFile: out, keyId: key.keyId, expiresAt: key.expiresAt },
      text: `registration key written to ${out} (expires ${key.expiresAt}); on the management server run:\n  secondsite manager register --key ${out} --name <management server name>`,
    };
  },
);

const userCreate = clientCommand(
  ['user', 'create'],
  'create a user with a role',
  `usage: secondsite vault user create NAME --role ${ROLES.join('|')}`,
  { role: { type: 'string' } },
  async (client, p) => {
    const name = p.positionals[0];
    if (!name) throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'the user NAME is missing');
    const u = await client.post<UserView>('/v1/users', {
      name,
      role: requireString(p, 'role', 'use --role ROLE'),
    });
    return { json: u, text: `user ${u.name} (${u.role})` };
  },
);

const userList = clientCommand(
  ['user', 'list'],
  'list users and roles',
  'usage: secondsite vault user list',
  {},
  async (client) => {
    const { users } = await client.get<{ users: UserView[] }>('/v1/users');
    return {
      json: users,
      text: table([['USER', 'ROLE', 'CREATED'], ...users.map((u) => [u.name, u.role, u.createdAt])]),
    };
  },
);

const tokenCreate = clientCommand(
  ['token', 'create'],
  'create an API token for a user (shown once)',
  'usage: secondsite vault token create --user NAME [--label TEXT] [--days N]   (default 90 days)',
  { user: { type: 'string' }, label: { type: 'string' }, days: { type: 'string' } },
  async (client, p) => {
    const user = requireString(p, 'user', 'use --user NAME');
    const t = await client.post<{ tokenId: string; token: string; expiresAt: string }>(
      `/v1/users/${encodeURIComponent(user)}/tokens`,
      {
        label: optionalString(p, 'label') ?? '',
        expiresInDays: parseIntOption(optionalString(p, 'days'), 'days', 1, 3650, 90),
      },
    );
    return {
      json: t,
      text: `${t.token}\n(the token for ${user}, valid until ${t.expiresAt}; it is not shown again)`,
    };
  },
);

function renderServers(list: ManagementServerView[]): string {
  if (list.length === 0)
    return "no management server is registered; create a key with 'secondsite vault key create'";
  return table([
    ['MANAGEMENT SERVER', 'ID', 'STATE', 'LAST HEARTBEAT', 'NODES'],
    ...list.map((m) => [
      m.name,
      m.managementServerId,
      m.connectionState,
      m.lastHeartbeatAt ?? '-',
      m.nodes.map((n) => n.nodeName).join(','),
    ]),
  ]);
}

const msList = clientCommand(
  ['management-server', 'list'],
  'registered management servers and their connection state',
  'usage: secondsite vault management-server list',
  {},
  async (client) => {
    const { managementServers } = await client.get<{ managementServers: ManagementServerView[] }>(
      '/v1/management-servers',
    );
    return { json: managementServers, text: renderServers(managementServers) };
  },
);

const msShow = clientCommand(
  ['management-server', 'show'],
  'one management server',
  'usage: secondsite vault management-server show ID',
  {},
  async (client, p) => {
    const id = p.positionals[0];
    if (!id)
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'the management server ID is missing');
    const m = await client.get<ManagementServerView>(`/v1/management-servers/${encodeURIComponent(id)}`);
    return { json: m, text: JSON.stringify(m, null, 2) };
  },
);

const alertList = clientCommand(
  ['alert', 'list'],
  'open alerts (--all: resolved ones too)',
  'usage: secondsite vault alert list [--all]',
  { all: { type: 'boolean' } },
  async (client, p) => {
    const { alerts } = await client.get<{ alerts: AlertView[] }>(
      `/v1/alerts${p.values['all'] ? '?all=true' : ''}`,
    );
    return {
      json: alerts,
      text: alerts.length
        ? table([
            ['RAISED', 'SEVERITY', 'KIND', 'OBJECT', 'RESOLVED', 'MESSAGE'],
            ...alerts.map((a) => [
              a.raisedAt,
              a.severity,
              a.kind,
              `${a.objectType} ${a.objectId}`,
              a.resolvedAt ?? '-',
              a.message,
            ]),
          ])
        : 'no open alerts',
    };
  },
);

const auditList = clientCommand(
  ['audit', 'list'],
  'the audit log, newest first',
  'usage: secondsite vault audit list [--limit N]   (default 50, at most 1000)',
  { limit: { type: 'string' } },
  async (client, p) => {
    const limit = parseIntOption(optionalString(p, 'limit'), 'limit', 1, 1000, 50);
    const { entries } = await client.get<{
      entries: Array<{
        at: string;
        principal: string;
        action: string;
        object: string | null;
        outcome: string;
      }>;
    }>(`/v1/audit?limit=${limit}`);
    return {
      json: entries,
      text: table([
        ['AT', 'WHO', 'ACTION', 'OBJECT', 'OUTCOME'],
        ...entries.map((e) => [e.at, e.principal, e.action, e.object ?? '-', e.outcome]),
      ]),
    };
  },
);

export const vaultCommands: CommandGroup = {
  name: 'vault',
  summary:
    'the vault: control plane API (users, registration keys, management servers, fabric, policies, pairings, mappings, jobs, alerts, audit)',
  commands: [
    serve,
    keyCreate,
    userCreate,
    userList,
    tokenCreate,
    msList,
    msShow,
    ...jobCommands,
    ...policyCommands(clientCommand),
    ...itemCommands(clientCommand),
    ...fabricCommands(clientCommand),
    ...pairingCommands(clientCommand),
    ...mappingCommands(clientCommand),
    alertList,
    auditList,
  ],
};

/**
 * `secondsite manager ...`: register a management server with a vault, and run it (its database and
 * the provider's heartbeat session). docs/design/vault.md sections 4-5.
 */
import { resolve } from 'node:path';
import { ManagerServer } from '../manager/manager-server.js';
import { loadProviderIdentity, registerProvider } from '../manager/provider/provider-registration.js';
import { stderrLogger } from '../observability/logger.js';
import { optionalString, parseCommandArgs, parseIntOption, requireString } from './args.js';
import type { Command, CommandGroup } from './command.js';
import { managerCertificateCommands } from './manager-certificate.commands.js';
import { managerFabricCommands } from './manager-fabric.commands.js';
import { logLevelOf, untilSignalled } from './serve-options.js';
import { managerHostCommands } from './manager-host.commands.js';
import { MANAGER_DATA_DIR_HELP, managerDataDir } from './manager-connection.js';
import { parseListenAddress } from '../manager/enrolment/enrolment-listener.js';

const DATA_DIR_HELP = MANAGER_DATA_DIR_HELP;
const dataDirOf = managerDataDir;

const registerHelp = `usage: secondsite manager register --key FILE --name NAME [--node NODE] [--vault URL]
                                 [--data-dir DIR] [--output json]

Registers this management server with the vault that made the key file ('secondsite vault key
create'): makes the provider's key here (it never leaves this machine), sends a certificate request
with the key, and keeps the vault-issued certificate in DIR/provider/. The key is spent. In a
management cluster, register the active node first, then each other node with --node and the same
--name (each with a new key). Registering a node again replaces its certificate.

  --key FILE     the registration key file
  --name NAME    the management server's name in the vault (e.g. vmm-east)
  --node NODE    this node's name (default node-1)
  --vault URL    reach the vault at another URL than the one in the key file
${DATA_DIR_HELP}`;

const register: Command = {
  path: ['register'],
  summary: 'register this management server with a vault (registration key)',
  help: registerHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      {
        key: { type: 'string' },
        name: { type: 'string' },
        node: { type: 'string' },
        vault: { type: 'string' },
        'data-dir': { type: 'string' },
      },
      registerHelp,
    );
    const vaultUrl = optionalString(p, 'vault');
    const identity = await registerProvider({
      dataDir: dataDirOf(optionalString(p, 'data-dir')),
      keyFile: resolve(requireString(p, 'key', registerHelp)),
      managementServerName: requireString(p, 'name', registerHelp),
      nodeName: optionalString(p, 'node') ?? 'node-1',
      ...(vaultUrl ? { vaultUrl } : {}),
    });
    const r = identity.registration;
    io.out(
      p.json
        ? JSON.stringify(r)
        : `registered ${r.managementServerName} (${r.managementServerId}) node ${r.nodeName} with vault ${r.vaultName} at ${r.vaultUrl}; now run: secondsite manager serve`,
    );
    return 0;
  },
};

const serveHelp = `usage: secondsite manager serve [--data-dir DIR] [--log-level LEVEL] [--enrol-listen HOST:PORT]
                              [--enrol-url URL] [--host-poll-interval SECONDS]

Runs the management server in the foreground until SIGINT or SIGTERM: its database (DATABASE_URL, or
a private PostgreSQL in DIR/postgres), the provider's session with the vault (heartbeats; the
vault never connects to a site), the enrolment listener for hosts (HTTPS, site CA in DIR/site-ca)
and the host poller. Register first. Prints one JSON line on stdout when ready (with enrolUrl).

  --enrol-listen HOST:PORT       where hosts enrol (default 127.0.0.1:8444; port 0 = any free port)
  --enrol-url URL                the URL key files give hosts, when they reach the listener by
                                 another name (default: https://HOST:PORT as bound)
  --host-poll-interval SECONDS   how often every host's inventory is read (default 10)
${DATA_DIR_HELP}`;

const serve: Command = {
  path: ['serve'],
  summary: 'run the management server and its provider session',
  help: serveHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      {
        'data-dir': { type: 'string' },
        'log-level': { type: 'string' },
        'enrol-listen': { type: 'string' },
        'enrol-url': { type: 'string' },
        'host-poll-interval': { type: 'string' },
      },
      serveHelp,
    );
    const dataDir = dataDirOf(optionalString(p, 'data-dir'));
    const listen = optionalString(p, 'enrol-listen');
    const manager = await ManagerServer.start({
      dataDir,
      databaseUrl: process.env['DATABASE_URL'],
      log: stderrLogger(logLevelOf(p), { role: 'manager' }),
      ...(listen ? { enrolListen: parseListenAddress(listen, '--enrol-listen') } : {}),
      enrolUrl: optionalString(p, 'enrol-url'),
      hostPollIntervalMs:
        parseIntOption(optionalString(p, 'host-poll-interval'), 'host-poll-interval', 1, 3600, 10) * 1000,
    });
    const r = manager.identity.registration;
    io.out(
      JSON.stringify({
        ready: true,
        managementServerId: r.managementServerId,
        name: r.managementServerName,
        node: r.nodeName,
        vault: r.vaultUrl,
        enrolUrl: manager.enrolmentListener.url,
      }),
    );
    await untilSignalled();
    await manager.stop();
    return 0;
  },
};

const status: Command = {
  path: ['status'],
  summary: 'whether and where this management server is registered',
  help: `usage: secondsite manager status [--data-dir DIR] [--output json]\n${DATA_DIR_HELP}`,
  async run(args, io) {
    const p = parseCommandArgs(args, { 'data-dir': { type: 'string' } }, 'usage: secondsite manager status');
    const r = (await loadProviderIdentity(dataDirOf(optionalString(p, 'data-dir')))).registration;
    io.out(
      p.json
        ? JSON.stringify(r)
        : `${r.managementServerName} (${r.managementServerId}) node ${r.nodeName}: registered with vault ${r.vaultName} at ${r.vaultUrl} since ${r.registeredAt}`,
    );
    return 0;
  },
};

export const managerCommands: CommandGroup = {
  name: 'manager',
  summary: 'a management server: register with a vault, run its provider, enrol and watch hosts',
  commands: [
    register,
    serve,
    status,
    ...managerCertificateCommands,
    ...managerHostCommands,
    ...managerFabricCommands,
  ],
};

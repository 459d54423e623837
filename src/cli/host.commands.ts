/** `secondsite host ...`: run a host agent and talk to it (the "Hyper-V Manager console" of secondsite). */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SecondsiteError } from '../domain/errors.js';
import { issueHostCert } from '../pki/csr.js';
import { logLevelOf, untilSignalled } from './serve-options.js';
import { type HostStatus, HostAgent } from '../host/agent/host-agent.js';
import { compileHostConfig, loadHostConfig } from '../host/agent/host-config.js';
import { stderrLogger } from '../observability/logger.js';
import { optionalString, parseCommandArgs, parseIntOption, requireString } from './args.js';
import type { Command, CommandGroup } from './command.js';
import { enrollCommand } from './host-enroll.commands.js';
import { authorizationCommands } from './host-authorization.commands.js';
import { diskCommands, renderDisks } from './host-disk.commands.js';
import { failoverCommands, renderFailovers } from './host-failover.commands.js';
import { renderVms, vmCommands } from './host-vm.commands.js';
import {
  renderRelationships,
  renderReplicas,
  replicaCommands,
  replicationCommands,
} from './host-replication.commands.js';
import { STATE_DIR_HELP, clientFor, defaultStateDir } from './host-client.js';

const initHelp = `usage: secondsite host init --host-id NAME [--state-dir DIR] [--ca CA_DIR] [--authorize HOST]...
                            [--replication-port N] [--listen HOST]

Creates a host's state folder and its configuration (host.json). Running it again with the same
host id changes nothing; another host id in the same folder is refused.

${STATE_DIR_HELP}
  --host-id NAME        this host's identity (lowercase letters, digits, dashes); its certificate names it
  --ca CA_DIR           issue this host's replication certificate from the CA in CA_DIR
                        (create one with 'secondsite ca init CA_DIR')
  --authorize HOST      allow primary host HOST to replicate into this host's 'default' storage
                        location (HOST=LOCATION for another location); repeatable
  --replication-port N  TCP port for incoming replication (default 8084; 0 = any free port)
  --listen HOST         address the replication listener binds (default 127.0.0.1)
  --output json         print the resulting configuration as JSON`;

const init: Command = {
  path: ['init'],
  summary: 'create a host state folder and configuration',
  help: initHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      {
        'state-dir': { type: 'string' },
        'host-id': { type: 'string' },
        'replication-port': { type: 'string' },
        listen: { type: 'string' },
        ca: { type: 'string' },
        authorize: { type: 'string', multiple: true },
      },
      initHelp,
    );
    const stateDir = defaultStateDir(optionalString(p, 'state-dir'));
    const raw = {
      hostId: requireString(p, 'host-id', initHelp),
      replication: {
        listenHost: optionalString(p, 'listen') ?? '127.0.0.1',
        listenPort: parseIntOption(optionalString(p, 'replication-port'), 'replication-port', 0, 65535, 8084),
        storageLocations: { default: 'replicas' },
        authorization: ((p.values['authorize'] as string[] | undefined) ?? []).map((a) => {
          const [primaryHostId, storageLocation] = a.split('=');
          return {
            primaryHostId: primaryHostId ?? '',
            storageLocation: storageLocation ?? 'default',
            trustGroup: 'default',
          };
        }),
      },
    };
    const config = compileHostConfig({ ...raw, stateDir });
    const path = join(stateDir, 'host.json');
    const existing = await readFile(path, 'utf8').catch(() => null);
    if (existing !== null) {
      const current = JSON.parse(existing) as { hostId?: string };
      if (current.hostId !== raw.hostId) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_ALREADY_EXISTS',
          `${path} already configures host '${current.hostId ?? '?'}'; choose another --state-dir or edit host.json`,
          { path },
        );
      }
    } else {
      await mkdir(stateDir, { recursive: true, mode: 0o700 });
      await mkdir(join(stateDir, 'pki'), { recursive: true, mode: 0o700 });
      await writeFile(path, `${JSON.stringify(raw, null, 2)}\n`, { mode: 0o600 });
    }
    const caDir = optionalString(p, 'ca');
    if (caDir) await issueHostCert({ caDir, name: config.hostId, outDir: config.replication.pkiDir });
    if (p.json) io.out(JSON.stringify(config));
    else io.out(`host ${config.hostId} configured in ${stateDir}`);
    return 0;
  },
};

const serveHelp = `usage: secondsite host serve [--state-dir DIR] [--log-level debug|info|warn|error]

Runs the host agent in the foreground until SIGINT or SIGTERM. Prints one JSON line on stdout when
ready ({"ready":true,...}); logs JSON lines on stderr.

${STATE_DIR_HELP}`;

const serve: Command = {
  path: ['serve'],
  summary: 'run the host agent',
  help: serveHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      { 'state-dir': { type: 'string' }, 'log-level': { type: 'string' } },
      serveHelp,
    );
    const config = await loadHostConfig(defaultStateDir(optionalString(p, 'state-dir')));
    const log = stderrLogger(logLevelOf(p), { role: 'host', hostId: config.hostId });
    const agent = new HostAgent(config, log);
    await agent.start();
    io.out(JSON.stringify({ ready: true, ...(await agent.status()) }));
    await untilSignalled();
    await agent.stop();
    return 0;
  },
};

const statusHelp = `usage: secondsite host status [--state-dir DIR] [--output json]

Shows the host agent's status: identity, disks, and every replication relationship with its state,
last recovery point, lag, bytes sent, throughput and health.

${STATE_DIR_HELP}`;

const status: Command = {
  path: ['status'],
  summary: 'show the host agent status (add --output json for scripts)',
  help: statusHelp,
  async run(args, io) {
    const p = parseCommandArgs(args, { 'state-dir': { type: 'string' } }, statusHelp);
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const s = await client.get<HostStatus>('/v1/status');
    if (p.json) io.out(JSON.stringify(s));
    else io.out(renderStatus(s));
    return 0;
  },
};

function renderStatus(s: HostStatus): string {
  const lines = [
    `host ${s.hostId}: up ${s.uptimeSeconds} s, ${s.nbdConnections} NBD connection(s)`,
    `  control ${s.controlSocket}`,
    `  nbd     ${s.nbdSocket}`,
    '',
    s.disks.length === 0 ? 'no disks' : renderDisks(s.disks),
    '',
    s.relationships.length === 0 ? 'replicating: nothing' : renderRelationships(s.relationships),
    '',
    s.replicas.length === 0 ? 'replicas: none' : renderReplicas(s.replicas),
    '',
    s.vms.length === 0 ? 'VMs: none' : renderVms(s.vms),
    ...(s.failovers.length === 0 ? [] : ['', renderFailovers(s.failovers)]),
    '',
    s.replicationPort === null
      ? 'replication listener: off (no certificate; run secondsite host init --ca CA_DIR)'
      : `replication listener: port ${s.replicationPort}`,
  ];
  return lines.join('\n');
}

export const hostCommands: CommandGroup = {
  name: 'host',
  summary: 'run a host agent, manage its disks, replication and recovery points',
  commands: [
    init,
    serve,
    status,
    ...diskCommands,
    ...vmCommands,
    ...replicationCommands,
    ...replicaCommands,
    ...failoverCommands,
    ...authorizationCommands,
    enrollCommand,
  ],
};

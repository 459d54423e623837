/** `secondsite host enroll`: enrol this host into a management server with an enrolment key. */
import { resolve } from 'node:path';
import { enrollHost } from '../host/agent/manager-enrolment.js';
import { optionalString, parseCommandArgs, parseIntOption, requireString } from './args.js';
import type { Command } from './command.js';
import { defaultStateDir, STATE_DIR_HELP } from './host-client.js';

const enrollHelp = `usage: secondsite host enroll --key FILE [--state-dir DIR] [--address A] [--port P]
                             [--manager-url URL] [--output json]

Enrols this host into the management server that made the key file ('secondsite manager host
enroll-key'): makes the host's key here (it never leaves this host), gets its certificate (CN = the
host id) from the management server's site CA, and installs it with the site CA in the host's pki
folder (host.json replication.pkiDir) and the manager's identity in DIR/manager.json. The key is
spent. Enrolling again (with a new key) replaces the certificate.

The host agent reads its certificate and manager when it starts: restart 'secondsite host serve'
after enrolling.

  --key FILE          the enrolment key file
  --address A         the address the management server and other hosts reach this host's
                      replication port at (default: host.json replication.listenHost)
  --port P            that port (default: host.json replication.listenPort)
  --manager-url URL   reach the enrolment listener at another URL than the key file's
${STATE_DIR_HELP}`;

export const enrollCommand: Command = {
  path: ['enroll'],
  summary: 'enrol this host into a management server (enrolment key)',
  help: enrollHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      {
        key: { type: 'string' },
        'state-dir': { type: 'string' },
        address: { type: 'string' },
        port: { type: 'string' },
        'manager-url': { type: 'string' },
      },
      enrollHelp,
    );
    const portText = optionalString(p, 'port');
    const r = await enrollHost({
      stateDir: defaultStateDir(optionalString(p, 'state-dir')),
      keyFile: resolve(requireString(p, 'key', enrollHelp)),
      address: optionalString(p, 'address'),
      port: portText === undefined ? undefined : parseIntOption(portText, 'port', 1, 65535, 1),
      managerUrl: optionalString(p, 'manager-url'),
    });
    io.out(
      p.json
        ? JSON.stringify({ ...r, restartNeeded: true })
        : `enrolled host ${r.hostId} into management server ${r.managementServerName} (${r.managerUrl}); it reaches this host at ${r.replicationAddress}:${r.replicationPort}.\ncertificate ${r.certPath} (valid until ${r.certNotAfter}); site CA ${r.siteCaFingerprint256}.\nRestart the host agent ('secondsite host serve') to use the new identity.`,
    );
    return 0;
  },
};

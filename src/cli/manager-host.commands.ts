/**
 * `secondsite manager host ...`: enrolment keys for hosts, the enrolled hosts and their connection
 * state, and an immediate poll of every host (docs/design/vault.md section 6). Through the running
 * management server's control socket (`<data dir>/manager.sock`).
 */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { HostCertificateRenewal } from '../manager/hosts/host-certificates.js';
import type { HostPollResult } from '../manager/hosts/host-poller.js';
import {
  ENROLMENT_KEY_DEFAULT_HOURS,
  ENROLMENT_KEY_MAX_HOURS,
  type EnrolmentKeyFile,
  type ManagedHostView,
} from '../protocol/host-api/enrolment.schema.js';
import { optionalString, parseCommandArgs, parseIntOption } from './args.js';
import type { Command } from './command.js';
import { callManager, MANAGER_DATA_DIR_HELP } from './manager-connection.js';

const DATA_DIR_HELP = MANAGER_DATA_DIR_HELP;
const call = callManager;

const enrollKeyHelp = `usage: secondsite manager host enroll-key [--expires-in-hours N] [--out FILE] [--data-dir DIR]
                                          [--output json]

Makes a host enrolment key on the running management server and writes the key file (mode 0600). Give
the file to one host: 'secondsite host enroll --key FILE' there makes the host's key, and gets its
certificate from this management server's site CA. A key is single-use, only the newest key is valid
(making one supersedes the older unused ones), and it expires.

  --expires-in-hours N   1 to ${ENROLMENT_KEY_MAX_HOURS} (default ${ENROLMENT_KEY_DEFAULT_HOURS})
  --out FILE             where to write the key (default ./enrolment.key)
${DATA_DIR_HELP}`;

const enrollKey: Command = {
  path: ['host', 'enroll-key'],
  summary: 'make a single-use key a host enrols with',
  help: enrollKeyHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      { 'expires-in-hours': { type: 'string' }, out: { type: 'string' }, 'data-dir': { type: 'string' } },
      enrollKeyHelp,
    );
    const hours = parseIntOption(
      optionalString(p, 'expires-in-hours'),
      'expires-in-hours',
      1,
      ENROLMENT_KEY_MAX_HOURS,
      ENROLMENT_KEY_DEFAULT_HOURS,
    );
    const key = await call<EnrolmentKeyFile>(optionalString(p, 'data-dir'), 'POST', '/v1/enrolment-keys', {
      expiresInHours: hours,
    });
    const out = resolve(optionalString(p, 'out') ?? 'enrolment.key');
    await writeFile(out, `${JSON.stringify(key, null, 2)}\n`, { mode: 0o600 });
    io.out(
      p.json
        ? JSON.stringify({
            keyFile: out,
            keyId: key.keyId,
            managerUrl: key.managerUrl,
            expiresAt: key.expiresAt,
          })
        : `wrote enrolment key ${key.keyId} to ${out} (expires ${key.expiresAt}; enrolment at ${key.managerUrl}).\nOn the host: secondsite host enroll --key ${out}`,
    );
    return 0;
  },
};

function hostLine(h: ManagedHostView): string {
  return [
    h.hostId.padEnd(20),
    h.connectionState.padEnd(13),
    `${h.replicationAddress}:${h.replicationPort}`.padEnd(24),
    String(h.vmCount ?? '-').padEnd(5),
    h.certNotAfter.slice(0, 10).padEnd(11),
    h.lastContactAt ?? '-',
    h.lastError ? `  (${h.lastError})` : '',
  ].join(' ');
}

function hostTable(hosts: ManagedHostView[]): string {
  if (hosts.length === 0) return "no hosts enrolled; make a key with 'secondsite manager host enroll-key'";
  const head = [
    'HOST'.padEnd(20),
    'STATE'.padEnd(13),
    'ADDRESS'.padEnd(24),
    'VMS'.padEnd(5),
    'CERT ENDS'.padEnd(11),
    'LAST CONTACT',
  ];
  return [head.join(' '), ...hosts.map(hostLine)].join('\n');
}

const listHelp = `usage: secondsite manager host list [--data-dir DIR] [--output json]

The hosts enrolled in the running management server: connection state (the host poller reads every
host's inventory over its peer API every 10 s), replication address, VMs, the day the host's
certificate ends (renewed by the management server well before), last contact and last error.
${DATA_DIR_HELP}`;

const list: Command = {
  path: ['host', 'list'],
  summary: 'the enrolled hosts and their connection state',
  help: listHelp,
  async run(args, io) {
    const p = parseCommandArgs(args, { 'data-dir': { type: 'string' } }, listHelp);
    const hosts = await call<ManagedHostView[]>(optionalString(p, 'data-dir'), 'GET', '/v1/hosts');
    io.out(p.json ? JSON.stringify(hosts) : hostTable(hosts));
    return 0;
  },
};

const refreshHelp = `usage: secondsite manager host refresh [--data-dir DIR] [--output json]

Reads every enrolled host's inventory now (instead of at the next poll) and shows the hosts. Exits 0
even when some host does not answer: its state is then disconnected, with the reason.
${DATA_DIR_HELP}`;

const refresh: Command = {
  path: ['host', 'refresh'],
  summary: "read every host's inventory now",
  help: refreshHelp,
  async run(args, io) {
    const p = parseCommandArgs(args, { 'data-dir': { type: 'string' } }, refreshHelp);
    const r = await call<{ results: HostPollResult[]; hosts: ManagedHostView[] }>(
      optionalString(p, 'data-dir'),
      'POST',
      '/v1/hosts/refresh',
    );
    io.out(p.json ? JSON.stringify(r) : hostTable(r.hosts));
    return 0;
  },
};

const renewHelp = `usage: secondsite manager host renew-certificate HOST [--data-dir DIR] [--output json]

Renews HOST's certificate now, instead of when it is due (the management server renews every
connected host's certificate by itself once less than a third of its 825 days is left, looking every
hour). The host makes a new key (it never leaves the host), this management server's site CA signs it,
and the host installs it and uses it for new connections at once; its old certificate stays valid until
its end, so open connections and replication go on. The host must be connected.
${DATA_DIR_HELP}`;

const renewCertificate: Command = {
  path: ['host', 'renew-certificate'],
  summary: "renew a host's certificate now",
  help: renewHelp,
  async run(args, io) {
    const p = parseCommandArgs(args, { 'data-dir': { type: 'string' } }, renewHelp);
    const hostId = p.positionals[0];
    if (!hostId) return (io.err(`error: the host is missing\n\n${renewHelp}`), 2);
    const r = await call<HostCertificateRenewal>(
      optionalString(p, 'data-dir'),
      'POST',
      `/v1/hosts/${encodeURIComponent(hostId)}/certificate/renew`,
    );
    io.out(
      p.json
        ? JSON.stringify(r)
        : `renewed the certificate of ${r.hostId}: serial ${r.serial}, valid until ${r.notAfter} (was ${r.previousSerial})`,
    );
    return 0;
  },
};

export const managerHostCommands: readonly Command[] = [enrollKey, list, refresh, renewCertificate];

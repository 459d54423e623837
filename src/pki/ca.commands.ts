/**
 * `secondsite ca init <dir>` and `secondsite ca issue --name <host> --out <dir> --ca <dir>`.
 * The objects have the shape of `Command` in src/cli/command.ts (the host layer may not import cli;
 * the lead lists `caCommandGroup` in main.ts).
 */
import { SecondsiteError } from '../domain/errors.js';
import { initCa } from './ca.js';
import { issueHostCert } from './csr.js';

interface Io {
  out(text: string): void;
  err(text: string): void;
}

interface CaCommand {
  readonly path: readonly string[];
  readonly summary: string;
  readonly help: string;
  run(args: string[], io: Io): Promise<number>;
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) {
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `${name} needs a value`);
  }
  return v;
}

function days(args: string[]): number | undefined {
  const v = option(args, '--days');
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 36500) {
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `--days must be 1..36500, got '${v}'`);
  }
  return Number(v);
}

export const caInitCommand: CaCommand = {
  path: ['init'],
  summary: 'create a certificate authority for host identities',
  help: [
    'usage: secondsite ca init <dir> [--days N] [--json]',
    '',
    'Creates <dir>/ca.key (mode 0600) and <dir>/ca.crt (EC P-256, valid --days, default 3650).',
    'Refuses to overwrite an existing CA.',
    '',
    'example: secondsite ca init /etc/secondsite/ca',
  ].join('\n'),
  async run(args, io) {
    const dir = args.find((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1] === '--days'));
    if (!dir) {
      io.err('usage: secondsite ca init <dir>');
      return 2;
    }
    const paths = await initCa(dir, { days: days(args) });
    if (args.includes('--json')) io.out(JSON.stringify(paths));
    else io.out(`CA created: key ${paths.keyPath}, certificate ${paths.certPath}`);
    return 0;
  },
};

export const caIssueCommand: CaCommand = {
  path: ['issue'],
  summary: 'issue a host key and certificate (CN and DNS SAN = host id)',
  help: [
    'usage: secondsite ca issue --name <host-id> --out <dir> --ca <ca-dir> [--days N] [--json]',
    '',
    'Writes <dir>/<host-id>.key (0600), <dir>/<host-id>.crt and <dir>/ca.crt. The certificate is valid',
    'for TLS server and client authentication (--days, default 825).',
    '',
    'example: secondsite ca issue --name host-a --out /etc/secondsite/tls --ca /etc/secondsite/ca',
  ].join('\n'),
  async run(args, io) {
    const name = option(args, '--name');
    const outDir = option(args, '--out');
    const caDir = option(args, '--ca');
    if (!name || !outDir || !caDir) {
      io.err('usage: secondsite ca issue --name <host-id> --out <dir> --ca <ca-dir>');
      return 2;
    }
    const issued = await issueHostCert({ caDir, name, outDir, days: days(args) });
    if (args.includes('--json')) io.out(JSON.stringify(issued));
    else
      io.out(
        `issued ${issued.hostId}: key ${issued.keyPath}, certificate ${issued.certPath}, CA ${issued.caCertPath}`,
      );
    return 0;
  },
};

/** The `ca` command group (shape of CommandGroup in src/cli/command.ts). */
export const caCommandGroup = {
  name: 'ca',
  summary: 'certificate authority for host identities (replication mutual TLS)',
  commands: [caInitCommand, caIssueCommand],
} as const;

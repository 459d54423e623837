/**
 * `secondsite manager certificate show|renew`: the provider's certificate with the vault, and renewing
 * it now instead of when it is due (docs/design/certificate-renewal.md section 4). Through the running
 * management server's control socket: a renewed certificate is swapped into the running provider.
 */
import type { CertificateView } from '../manager/provider/provider-certificate.js';
import { optionalString, parseCommandArgs } from './args.js';
import type { Command } from './command.js';
import { callManager, MANAGER_DATA_DIR_HELP } from './manager-connection.js';

function render(c: CertificateView, renewed: boolean): string {
  return [
    `${renewed ? 'renewed: ' : ''}provider certificate ${c.serial}`,
    `  valid           ${c.notBefore} to ${c.notAfter}`,
    `  renewal due at  ${c.renewalDueAt} (renewed by the management server then; 'renew' does it now)`,
    `  last renewed    ${c.lastRenewedAt ?? 'not since the management server started'}`,
    ...(c.lastError ? [`  last error      ${c.lastError}`] : []),
  ].join('\n');
}

const showHelp = `usage: secondsite manager certificate show [--data-dir DIR] [--output json]

Shows the certificate this management server's provider presents to the vault: serial, validity,
from when it is renewed (when less than a third of its lifetime is left; the management server does it
by itself, checking every hour), the last renewal and the last renewal error.
${MANAGER_DATA_DIR_HELP}`;

const renewHelp = `usage: secondsite manager certificate renew [--data-dir DIR] [--output json]

Renews the provider's certificate now: makes a new key here (it never leaves this machine), has the
vault sign it (authenticated by the current certificate, which must not have ended), installs it and
uses it from the next request on. The vault then refuses the old certificate. If the certificate has
ended already, register again with a new key ('secondsite manager register').
${MANAGER_DATA_DIR_HELP}`;

function certificateCommand(
  verb: 'show' | 'renew',
  summary: string,
  help: string,
  method: 'GET' | 'POST',
  path: string,
): Command {
  return {
    path: ['certificate', verb],
    summary,
    help,
    async run(args, io) {
      const p = parseCommandArgs(args, { 'data-dir': { type: 'string' } }, help);
      const c = await callManager<CertificateView>(optionalString(p, 'data-dir'), method, path);
      io.out(p.json ? JSON.stringify(c) : render(c, verb === 'renew'));
      return 0;
    },
  };
}

export const managerCertificateCommands: readonly Command[] = [
  certificateCommand('show', "the provider's certificate with the vault", showHelp, 'GET', '/v1/certificate'),
  certificateCommand(
    'renew',
    "renew the provider's certificate now",
    renewHelp,
    'POST',
    '/v1/certificate/renew',
  ),
];

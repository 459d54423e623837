/**
 * `secondsite host vm ...`: VMs on this host (the `process` runtime driver: a guest application whose
 * disks are this host's disks over NBD).
 */
import { SecondsiteError } from '../domain/errors.js';
import type { VmStatus } from '../host/vm/vm-driver.js';
import { optionalString, parseCommandArgs, parseIntOption, requireString } from './args.js';
import type { Command } from './command.js';
import { STATE_DIR_HELP, clientFor, defaultStateDir } from './host-client.js';
import { STATE, simple, table } from './simple-command.js';

export function renderVms(vms: VmStatus[]): string {
  const rows = [['VM', 'STATE', 'PID', 'NICS', 'RECORDS (DURABLE)', 'LAST EXIT']];
  for (const v of vms) {
    rows.push([
      v.vmId,
      v.state,
      v.pid === null ? '-' : String(v.pid),
      v.nics.map((n) => `${n.ipv4}:${n.port ?? '-'}${n.netns ? ` (${n.netns})` : ''}`).join(',') || '-',
      v.guest ? `${v.guest.lastWrittenSeq} (${v.guest.lastDurableSeq})` : '-',
      v.lastExit ? `${v.lastExit.reason}${v.lastExit.code !== null ? ` ${v.lastExit.code}` : ''}` : '-',
    ]);
  }
  return table(rows);
}

const createHelp = `usage: secondsite host vm create VM_ID --disks D1[,D2...] [options]

Defines a VM on this host whose disks are this host's disks (the first one is the boot disk: the guest
keeps its record log there). The VM is created off; start it with 'secondsite host vm start'.

options:
  --disks D1[,D2...]        disk ids of this host (create them with 'secondsite host disk create')
  --name NAME               display name (default: the VM id)
  --nic ID:NETWORK:IP:PORT  a NIC on VM network NETWORK answering on IP:PORT (repeatable; PORT 0 = any)
  --rate N                  records the guest writes per second (default 50)
  --payload-bytes N         payload bytes per record (default 256)
${STATE_DIR_HELP}
  --output json             print the VM's status as JSON

example:
  secondsite host vm create vm1 --disks vm1-d0 --nic nic0:prod:127.0.0.1:8080 --rate 100`;

function parseNic(text: string): { nicId: string; network: string; ipv4: string; port: number } {
  const parts = text.split(':');
  const [nicId, network, ipv4, port] = parts;
  if (parts.length !== 4 || !nicId || !network || !ipv4 || port === undefined) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `--nic '${text}' is not ID:NETWORK:IP:PORT, e.g. nic0:prod:127.0.0.1:8080`,
    );
  }
  return { nicId, network, ipv4, port: parseIntOption(port, 'nic port', 0, 65535, 0) };
}

const create: Command = {
  path: ['vm', 'create'],
  summary: "define a VM over this host's disks",
  help: createHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      {
        ...STATE,
        disks: { type: 'string' },
        name: { type: 'string' },
        nic: { type: 'string', multiple: true },
        rate: { type: 'string' },
        'payload-bytes': { type: 'string' },
      },
      createHelp,
    );
    const vmId = p.positionals[0];
    if (!vmId) return (io.err(`error: VM_ID is missing\n\n${createHelp}`), 2);
    const nics = ((p.values['nic'] as string[] | undefined) ?? []).map(parseNic);
    const rate = optionalString(p, 'rate');
    const payload = optionalString(p, 'payload-bytes');
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const status = await client.post<VmStatus>('/v1/vms', {
      vmId,
      name: optionalString(p, 'name'),
      diskIds: requireString(p, 'disks', createHelp).split(','),
      nics,
      guest: {
        ...(rate !== undefined ? { recordsPerSec: parseIntOption(rate, 'rate', 0, 20_000, 50) } : {}),
        ...(payload !== undefined
          ? { payloadBytes: parseIntOption(payload, 'payload-bytes', 0, 1024 * 1024, 256) }
          : {}),
      },
    });
    io.out(p.json ? JSON.stringify(status) : `VM ${status.vmId} defined (${status.state})`);
    return 0;
  },
};

const vm = (id: string | undefined): string => `/v1/vms/${encodeURIComponent(id ?? '')}`;

const list = simple(
  ['vm', 'list'],
  'list the VMs on this host',
  `usage: secondsite host vm list [--state-dir DIR] [--output json]`,
  (c) => c.get('/v1/vms'),
  (r) => {
    const vms = (r as { vms: VmStatus[] }).vms;
    return vms.length ? renderVms(vms) : 'no VMs on this host';
  },
  false,
);

const show = simple(
  ['vm', 'show'],
  "show a VM's status and its guest's own report",
  `usage: secondsite host vm show VM_ID [--state-dir DIR] [--output json]`,
  (c, id) => c.get(vm(id)),
  (r) => JSON.stringify(r, null, 2),
  true,
);

const start = simple(
  ['vm', 'start'],
  'boot a VM (waits until its guest runs)',
  `usage: secondsite host vm start VM_ID [--state-dir DIR] [--output json]`,
  (c, id) => c.post(`${vm(id)}/start`),
  (r) => `VM ${(r as VmStatus).vmId} is ${(r as VmStatus).state}`,
  true,
);

const shutdownHelp = `usage: secondsite host vm shutdown VM_ID [--timeout-ms N] [--state-dir DIR] [--output json]

Asks the guest to flush and stop, and waits up to --timeout-ms (default 30000). A guest that does not
stop in time keeps running; power it off with 'secondsite host vm power-off'.`;

const shutdown: Command = {
  path: ['vm', 'shutdown'],
  summary: 'shut a VM down gracefully',
  help: shutdownHelp,
  async run(args, io) {
    const p = parseCommandArgs(args, { ...STATE, 'timeout-ms': { type: 'string' } }, shutdownHelp);
    const id = p.positionals[0];
    if (!id) return (io.err(`error: VM_ID is missing\n\n${shutdownHelp}`), 2);
    const timeoutMs = parseIntOption(optionalString(p, 'timeout-ms'), 'timeout-ms', 100, 600_000, 30_000);
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const r = await client.post<VmStatus>(`${vm(id)}/shutdown`, { timeoutMs });
    io.out(p.json ? JSON.stringify(r) : `VM ${r.vmId} is ${r.state}`);
    return 0;
  },
};

const powerOff = simple(
  ['vm', 'power-off'],
  'pull the plug on a VM (no flush)',
  `usage: secondsite host vm power-off VM_ID [--state-dir DIR] [--output json]`,
  (c, id) => c.post(`${vm(id)}/power-off`),
  (r) => `VM ${(r as VmStatus).vmId} is ${(r as VmStatus).state}`,
  true,
);

const remove = simple(
  ['vm', 'delete'],
  'delete the definition of a VM that is off (its disks stay)',
  `usage: secondsite host vm delete VM_ID [--state-dir DIR] [--output json]`,
  (c, id) => c.delete(vm(id)),
  (r, id) => ((r as { removed: boolean }).removed ? `VM ${id ?? ''} deleted` : `no VM ${id ?? ''}`),
  true,
);

export const vmCommands: Command[] = [create, list, show, start, shutdown, powerOff, remove];

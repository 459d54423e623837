/** `secondsite lab ...`: the whole system on this machine, for a first look and for tests. */
import { labUp } from '../lab/lab-up.js';
import { optionalString, parseCommandArgs, parseIntOption } from './args.js';
import type { Command, CommandGroup } from './command.js';

const upHelp = `usage: secondsite lab up [--single-server] [--dir DIR] [--writes-per-second N] [--duration SECONDS]
                        [--output json]

Runs the whole system on this machine (what 'npm start' runs), ready to protect: a vault; two
management servers, vmm-site-a (hosts host-a1, host-a2; cloud prod, VM network net-prod) and
vmm-site-b (host-b1; cloud dr, VM network net-dr), each with its own PostgreSQL, registered with the
vault; the host agents enrolled into them; guest VMs web and db running in cloud prod, a workload
writing db's data disk. Nothing is protected: it prints the vault's URL, the admin token file and the
commands that protect the VMs (policy, pairing, network mapping, enable), then live status read from
the vault until Ctrl-C (or --duration). Starting takes about a minute.
Everything lives in DIR (default ./.data/lab), recreated at each start; the logs are in DIR/logs.

  --single-server         one management server, vmm-single, with both clouds: prod over host group
                          hg-prod (host-a1, running web and db) and dr over hg-dr (host-b1)
  --writes-per-second N   the workload's write rate on db-d1 (default 100; 0: no workload)
  --duration SECONDS      stop by itself this long after it is ready
  --output json           JSON lines: starting, ready (with the walkthrough's commands), status each
                          second, stopped`;

const up: Command = {
  path: ['up'],
  summary: 'run the lab: vault, management servers, hosts and VMs ready to protect, with live status',
  help: upHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      {
        dir: { type: 'string' },
        'single-server': { type: 'boolean' },
        'writes-per-second': { type: 'string' },
        duration: { type: 'string' },
      },
      upHelp,
    );
    const duration = optionalString(p, 'duration');
    return labUp({
      dir: optionalString(p, 'dir') ?? '.data/lab',
      singleServer: p.values['single-server'] === true,
      writesPerSecond: parseIntOption(
        optionalString(p, 'writes-per-second'),
        'writes-per-second',
        0,
        100_000,
        100,
      ),
      ...(duration !== undefined
        ? { durationSeconds: parseIntOption(duration, 'duration', 1, 86_400 * 365, 0) }
        : {}),
      json: p.json,
      out: (line) => io.out(line),
      tty: process.stdout.isTTY && !p.json,
    });
  },
};

export const labCommands: CommandGroup = {
  name: 'lab',
  summary: 'run the whole system on this machine (npm start runs "lab up")',
  commands: [up],
};

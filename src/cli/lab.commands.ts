/** `secondsite lab ...`: the whole system on this machine, for a first look and for tests. */
import { labUp } from '../lab/lab-up.js';
import { optionalString, parseCommandArgs, parseIntOption } from './args.js';
import type { Command, CommandGroup } from './command.js';

const upHelp = `usage: secondsite lab up [--dir DIR] [--copy-frequency 30s|5m|15m|continuous] [--writes-per-second N]
                        [--duration SECONDS] [--output json]

Runs a two-site system on this machine (what 'npm start' runs): a vault and two management servers
(vmm-site-a, vmm-site-b) registered with it, each with its own PostgreSQL; a CA and two host agents,
host-a (site A) with VM vm1 whose two disks are written by a workload, replicating to host-b (site B).
Prints the vault's URL and admin token file, then live status until Ctrl-C (or --duration).
Everything lives in DIR (default ./.data/lab), recreated at each start; the logs are in DIR/logs.

  --copy-frequency F      30s (default), 5m, 15m or continuous
  --writes-per-second N   the workload's write rate (default 200)
  --duration SECONDS      stop by itself after this long
  --output json           one JSON status object per second instead of the screen`;

const FREQ: Record<string, number> = { '30s': 30, '5m': 300, '15m': 900, continuous: 0 };

const up: Command = {
  path: ['up'],
  summary: 'run the lab: two sites replicating a VM, with live status',
  help: upHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      {
        dir: { type: 'string' },
        'copy-frequency': { type: 'string' },
        'writes-per-second': { type: 'string' },
        duration: { type: 'string' },
      },
      upHelp,
    );
    const freqText = optionalString(p, 'copy-frequency') ?? '30s';
    const copyFrequencySeconds = FREQ[freqText];
    if (copyFrequencySeconds === undefined) {
      io.err(`error: --copy-frequency must be 30s, 5m, 15m or continuous, not '${freqText}'\n\n${upHelp}`);
      return 2;
    }
    const duration = optionalString(p, 'duration');
    return labUp({
      dir: optionalString(p, 'dir') ?? '.data/lab',
      copyFrequencySeconds,
      writesPerSecond: parseIntOption(
        optionalString(p, 'writes-per-second'),
        'writes-per-second',
        1,
        100_000,
        200,
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

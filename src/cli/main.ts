import type { Command, CommandGroup, CommandIo } from './command.js';
import { caCommandGroup } from '../pki/ca.commands.js';
import { hostCommands } from './host.commands.js';
import { labCommands } from './lab.commands.js';
import { managerCommands } from './manager.commands.js';
import { vaultCommands } from './vault.commands.js';
import { reportError } from './output.js';

/** Every command group of the binary. Each area adds its group here. */
const GROUPS: readonly CommandGroup[] = [
  vaultCommands,
  managerCommands,
  hostCommands,
  caCommandGroup,
  labCommands,
];

const stdio: CommandIo = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

function usage(): string {
  const lines = ['usage: secondsite <group> <command> [options]', '', 'groups:'];
  for (const g of GROUPS) lines.push(`  ${g.name.padEnd(10)} ${g.summary}`);
  lines.push('', "Run 'secondsite <group> --help' for a group's commands.");
  return lines.join('\n');
}

function groupUsage(group: CommandGroup): string {
  const lines = [`usage: secondsite ${group.name} <command> [options]`, '', group.summary, '', 'commands:'];
  for (const c of group.commands) lines.push(`  ${c.path.join(' ').padEnd(22)} ${c.summary}`);
  lines.push('', `Run 'secondsite ${group.name} <command> --help' for details.`);
  return lines.join('\n');
}

/** Finds the command whose path is the longest prefix of `words`. */
function findCommand(group: CommandGroup, words: string[]): { command: Command; rest: string[] } | null {
  let best: { command: Command; rest: string[] } | null = null;
  for (const c of group.commands) {
    if (c.path.every((w, i) => words[i] === w) && (!best || c.path.length > best.command.path.length)) {
      best = { command: c, rest: words.slice(c.path.length) };
    }
  }
  return best;
}

export async function main(argv: string[], io: CommandIo = stdio): Promise<number> {
  const [groupName, ...words] = argv;
  if (!groupName || groupName === '--help' || groupName === '-h' || groupName === 'help') {
    io.out(usage());
    return groupName ? 0 : 2;
  }
  const group = GROUPS.find((g) => g.name === groupName);
  if (!group) {
    io.err(`secondsite: unknown group '${groupName}'.\n\n${usage()}`);
    return 2;
  }
  const found = findCommand(group, words);
  if (!found) {
    const wantsHelp = words.length === 0 || words[0] === '--help' || words[0] === '-h';
    if (wantsHelp) {
      io.out(groupUsage(group));
      return words.length === 0 ? 2 : 0;
    }
    io.err(`secondsite ${group.name}: unknown command '${words.join(' ')}'.\n\n${groupUsage(group)}`);
    return 2;
  }
  if (found.rest.includes('--help') || found.rest.includes('-h')) {
    io.out(found.command.help);
    return 0;
  }
  try {
    return await found.command.run(found.rest, io);
  } catch (e) {
    return reportError(
      io,
      e,
      found.rest.includes('--json') || found.rest.join(' ').includes('--output json'),
    );
  }
}

/**
 * Helpers for the many small commands of the host CLI: a command that calls one control-API route
 * with an optional id and prints the answer (text or `--output json`), and aligned text tables.
 */
import { optionalString, parseCommandArgs } from './args.js';
import type { Command } from './command.js';
import { clientFor, defaultStateDir } from './host-client.js';

export const STATE = { 'state-dir': { type: 'string' } } as const;

export function table(rows: string[][]): string {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function simple(
  path: [string, string],
  summary: string,
  help: string,
  call: (client: Awaited<ReturnType<typeof clientFor>>, id: string | undefined) => Promise<unknown>,
  render: (result: unknown, id: string | undefined) => string,
  needsId: boolean,
): Command {
  return {
    path,
    summary,
    help,
    async run(args, io) {
      const p = parseCommandArgs(args, STATE, help);
      const id = p.positionals[0];
      if (needsId && !id) return (io.err(`error: an id is missing\n\n${help}`), 2);
      const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
      const result = await call(client, id);
      io.out(p.json ? JSON.stringify(result) : render(result, id));
      return 0;
    },
  };
}

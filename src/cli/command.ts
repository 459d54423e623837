/**
 * A CLI command: `secondsite <group> <name> [options]`. Each area declares its commands in its own
 * `*.commands.ts` file; `main.ts` lists the groups. `run` returns the process exit code.
 */
export interface Command {
  /** Words after the group, e.g. ['disk', 'create'] for `secondsite host disk create`. */
  readonly path: readonly string[];
  readonly summary: string;
  /** Full help text: usage line, options with defaults, examples. */
  readonly help: string;
  run(args: string[], io: CommandIo): Promise<number>;
}

export interface CommandGroup {
  readonly name: string;
  readonly summary: string;
  readonly commands: readonly Command[];
}

export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
}

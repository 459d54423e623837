/**
 * Strict option parsing for commands: unknown options and missing values are errors that say what to
 * type instead. Every command accepts `--output json` (or `--json`) for scripts.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SecondsiteError } from '../domain/errors.js';
import { parseBytes } from '../domain/units.js';

type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  json: boolean;
}

export function parseCommandArgs(args: string[], options: Options, usage: string): Parsed {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { ...options, output: { type: 'string' }, json: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
    const output = values['output'];
    if (output !== undefined && output !== 'json' && output !== 'text') {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `--output must be 'json' or 'text', not '${String(output)}'`,
      );
    }
    return { values, positionals, json: output === 'json' || values['json'] === true };
  } catch (e) {
    if (e instanceof SecondsiteError) throw e;
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `${(e as Error).message}\n\n${usage}`);
  }
}

export function requireString(parsed: Parsed, name: string, usage: string): string {
  const v = parsed.values[name];
  if (typeof v !== 'string' || v === '') {
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `--${name} is required.\n\n${usage}`);
  }
  return v;
}

export function optionalString(parsed: Parsed, name: string): string | undefined {
  const v = parsed.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function parseSizeOption(text: string, name: string): number {
  const bytes = parseBytes(text);
  if (bytes === null || bytes <= 0) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `--${name} '${text}' is not a size; use bytes or a suffix, e.g. 512M, 10G, 1.5TiB`,
    );
  }
  return bytes;
}

export function parseIntOption(
  text: string | undefined,
  name: string,
  min: number,
  max: number,
  dflt: number,
): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `--${name} must be a whole number from ${min} to ${max}, not '${text}'`,
    );
  }
  return n;
}

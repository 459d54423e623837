/** What every `secondsite <role> serve` command shares: its log level option and its wait for a signal. */
import { SecondsiteError } from '../domain/errors.js';
import { optionalString, type Parsed } from './args.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** `--log-level`, default info. */
export function logLevelOf(p: Parsed): LogLevel {
  const level = optionalString(p, 'log-level') ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(level)) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      '--log-level must be debug, info, warn or error',
    );
  }
  return level as LogLevel;
}

/** Resolves at the first SIGINT or SIGTERM. */
export function untilSignalled(): Promise<void> {
  return new Promise<void>((done) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      done();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

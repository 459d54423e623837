/**
 * Structured JSON logs, one object per line: { ts, level, msg, ...fields }. Fields carry ids and units
 * (`diskId`, `bytes`, `durationMs`); messages are short and stable so logs can be grepped.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function createLogger(
  sink: (line: string) => void,
  minLevel: LogLevel = 'info',
  base: Record<string, unknown> = {},
): Logger {
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] < ORDER[minLevel]) return;
    sink(JSON.stringify({ ts: new Date().toISOString(), level, msg, ...base, ...fields }, errorReplacer));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(sink, minLevel, { ...base, ...fields }),
  };
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const withCode = value as Error & { code?: unknown };
    return { name: value.name, message: value.message, code: withCode.code };
  }
  return value;
}

/** Logs to stderr (stdout is kept for machine-readable output such as the ready line). */
export function stderrLogger(minLevel: LogLevel = 'info', base: Record<string, unknown> = {}): Logger {
  return createLogger((line) => process.stderr.write(`${line}\n`), minLevel, base);
}

export const silentLogger: Logger = createLogger(() => undefined, 'error');

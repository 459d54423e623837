/**
 * The one error registry (Fastify's lib/errors.js, with Temporal's retry classes).
 *
 * Every error a user or a program can see has a stable `SECONDSITE_ERR_*` code, an HTTP status for the
 * APIs, and a retry class:
 *   - 'permanent': retrying the same request will fail the same way; a person must change something.
 *   - 'transient': a connectivity or resource condition; the same request may succeed later.
 * The message is for people and says what was wrong and what to do; the code is for programs.
 * Codes are never reused or renumbered. docs/reference/errors.md is generated from this table and a
 * test keeps the two in sync.
 */
export type RetryClass = 'permanent' | 'transient';

interface ErrorSpec {
  readonly httpStatus: number;
  readonly retry: RetryClass;
  readonly summary: string;
}

export const ERROR_REGISTRY = {
  SECONDSITE_ERR_INVALID_ARGUMENT: {
    httpStatus: 400,
    retry: 'permanent',
    summary: 'A parameter or input is malformed or out of range.',
  },
  SECONDSITE_ERR_NOT_FOUND: {
    httpStatus: 404,
    retry: 'permanent',
    summary: 'The named object does not exist.',
  },
  SECONDSITE_ERR_ALREADY_EXISTS: {
    httpStatus: 409,
    retry: 'permanent',
    summary: 'An object with this name or id already exists with different settings.',
  },
  SECONDSITE_ERR_INVALID_STATE: {
    httpStatus: 409,
    retry: 'permanent',
    summary: 'The operation is not allowed in the current state; the message names the state and what to do.',
  },
  SECONDSITE_ERR_UNAUTHORIZED: {
    httpStatus: 401,
    retry: 'permanent',
    summary: 'The caller could not be authenticated.',
  },
  SECONDSITE_ERR_FORBIDDEN: {
    httpStatus: 403,
    retry: 'permanent',
    summary: 'The caller is authenticated but not allowed to do this.',
  },
  SECONDSITE_ERR_UNSAFE_PATH: {
    httpStatus: 400,
    retry: 'permanent',
    summary: 'A path or name would leave its storage root or is not a plain name.',
  },
  SECONDSITE_ERR_NO_SPACE: {
    httpStatus: 507,
    retry: 'transient',
    summary: 'The storage is full; free space and the operation resumes.',
  },
  SECONDSITE_ERR_IO: {
    httpStatus: 500,
    retry: 'permanent',
    summary: 'The storage reported an I/O error; the affected disk needs attention and a resync.',
  },
  SECONDSITE_ERR_DISK_BUSY: {
    httpStatus: 409,
    retry: 'transient',
    summary: 'The disk is in use by another operation.',
  },
  SECONDSITE_ERR_UNCLEAN_SHUTDOWN: {
    httpStatus: 409,
    retry: 'permanent',
    summary: 'Change tracking was not closed cleanly; a checksum-compared resync is required.',
  },
  SECONDSITE_ERR_CONNECTION_LOST: {
    httpStatus: 503,
    retry: 'transient',
    summary: 'The connection to the peer was lost; it is retried automatically.',
  },
  SECONDSITE_ERR_STARTING: {
    httpStatus: 503,
    retry: 'transient',
    summary:
      'The host agent is still starting (it knows its failovers only once started); retried automatically.',
  },
  SECONDSITE_ERR_TIMEOUT: {
    httpStatus: 504,
    retry: 'transient',
    summary: 'The peer did not answer in time.',
  },
  SECONDSITE_ERR_PEER_NOT_AUTHORIZED: {
    httpStatus: 403,
    retry: 'permanent',
    summary: 'The replica host has no authorization entry for this primary host and storage location.',
  },
  SECONDSITE_ERR_TLS_REQUIRED: {
    httpStatus: 403,
    retry: 'permanent',
    summary: 'The connection must use TLS (mutual TLS 1.3 for replication).',
  },
  SECONDSITE_ERR_STALE_EPOCH: {
    httpStatus: 409,
    retry: 'permanent',
    summary:
      'The frame or request carries an older generation (epoch) of the relationship; the sender was fenced by a failover.',
  },
  SECONDSITE_ERR_BAD_FRAME: {
    httpStatus: 400,
    retry: 'permanent',
    summary: 'A replication frame is malformed, forged or fails its checksum.',
  },
  SECONDSITE_ERR_PROTOCOL: { httpStatus: 400, retry: 'permanent', summary: 'The peer broke the protocol.' },
  SECONDSITE_ERR_RECOVERY_POINT_NOT_FOUND: {
    httpStatus: 404,
    retry: 'permanent',
    summary: 'The recovery point does not exist or is no longer retained.',
  },
  SECONDSITE_ERR_METADATA_CORRUPT: {
    httpStatus: 500,
    retry: 'permanent',
    summary:
      'A metadata file (catalogue, intent, index) fails its checksum or is malformed; it is not trusted, and the replica needs a resync from the primary.',
  },
  SECONDSITE_ERR_DATABASE_UNAVAILABLE: {
    httpStatus: 503,
    retry: 'transient',
    summary:
      'The PostgreSQL database cannot be reached, or the embedded PostgreSQL did not start; the message says why and where its log is.',
  },
  SECONDSITE_ERR_SCHEMA_TOO_NEW: {
    httpStatus: 503,
    retry: 'permanent',
    summary:
      'The database schema is newer than this version of secondsite knows (a newer version migrated it); run that newer version, or restore a backup taken before the upgrade.',
  },
  SECONDSITE_ERR_SCHEMA_MISMATCH: {
    httpStatus: 503,
    retry: 'permanent',
    summary:
      'An applied database migration differs from the one this version ships (checksum or name), or the database belongs to another component; the schema is not trusted.',
  },
  SECONDSITE_ERR_COMMAND_INTERRUPTED: {
    httpStatus: 409,
    retry: 'permanent',
    summary:
      'The management server stopped while it ran a command from the vault; the command is not run twice, so its job fails (start it again).',
  },
  SECONDSITE_ERR_LEASE_LOST: {
    httpStatus: 409,
    retry: 'permanent',
    summary:
      'The lease on a job or lock expired and another process may hold it now; the holder must stop working on it.',
  },
  SECONDSITE_ERR_METHOD_NOT_ALLOWED: {
    httpStatus: 405,
    retry: 'permanent',
    summary: 'The path exists but not with this HTTP method; the Allow header lists the ones it has.',
  },
  SECONDSITE_ERR_PAYLOAD_TOO_LARGE: {
    httpStatus: 413,
    retry: 'permanent',
    summary: 'The request body is larger than the API accepts.',
  },
  SECONDSITE_ERR_KEY_EXPIRED: {
    httpStatus: 401,
    retry: 'permanent',
    summary: 'The registration key has expired; create a new one in the vault.',
  },
  SECONDSITE_ERR_KEY_USED: {
    httpStatus: 401,
    retry: 'permanent',
    summary: 'The registration key was already used (keys are single-use); create a new one.',
  },
  SECONDSITE_ERR_KEY_SUPERSEDED: {
    httpStatus: 401,
    retry: 'permanent',
    summary: 'A newer registration key was created; only the newest key is valid.',
  },
  SECONDSITE_ERR_KEY_FOREIGN: {
    httpStatus: 401,
    retry: 'permanent',
    summary: 'The registration key belongs to another vault.',
  },
  SECONDSITE_ERR_KEY_INVALID: {
    httpStatus: 401,
    retry: 'permanent',
    summary: 'The registration key is damaged or was tampered with (unknown id or wrong secret).',
  },
  SECONDSITE_ERR_INTERNAL: {
    httpStatus: 500,
    retry: 'permanent',
    summary: 'A bug: an invariant was broken. Please report it with the log.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_REGISTRY;

/** An error with a registered code. `details` carries machine-readable context (ids, states, sizes). */
export class SecondsiteError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SecondsiteError';
    this.code = code;
    this.details = details;
  }

  get retry(): RetryClass {
    return ERROR_REGISTRY[this.code].retry;
  }

  get httpStatus(): number {
    return ERROR_REGISTRY[this.code].httpStatus;
  }

  toJSON(): {
    code: ErrorCode;
    message: string;
    retry: RetryClass;
    details: Readonly<Record<string, unknown>>;
  } {
    return { code: this.code, message: this.message, retry: this.retry, details: this.details };
  }
}

export function isSecondsiteError(e: unknown, code?: ErrorCode): e is SecondsiteError {
  return e instanceof SecondsiteError && (code === undefined || e.code === code);
}

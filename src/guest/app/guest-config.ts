/**
 * The guest application's configuration: one schema with every default, validated once at boot, then
 * frozen. The host's VM driver writes it as a JSON file; `guest-main.ts --config <file>` reads it.
 */
import { z } from 'zod';
import { SecondsiteError } from '../../domain/errors.js';
import { GUEST_ID_MAX_BYTES } from './guest-log.format.js';

export const GUEST_DEFAULTS = {
  recordsPerSec: 50,
  payloadBytes: 256,
  flushEveryRecords: 16,
  flushEveryMs: 200,
  autoThawMs: 30_000,
} as const;

const listenSchema = z
  .object({
    host: z.string().min(1),
    /** 0 = any free port (the guest reports the one it got). */
    port: z.number().int().min(0).max(65535),
  })
  .strict();

export const guestConfigSchema = z
  .object({
    guestId: z
      .string()
      .min(1)
      .refine((s) => Buffer.byteLength(s, 'utf8') <= GUEST_ID_MAX_BYTES, {
        message: `at most ${GUEST_ID_MAX_BYTES} bytes of UTF-8`,
      }),
    /** NBD URIs of the guest's disks (`nbd+unix:///<export>?socket=<path>`); the log lives on the first. */
    disks: z.array(z.string().min(1)).min(1),
    /** Addresses the HTTP API answers on (one per NIC). */
    listen: z.array(listenSchema).default([]),
    /** Unix socket for the host's guest-agent channel (same HTTP API), reachable across namespaces. */
    agentSocket: z.string().min(1).nullable().default(null),
    /** Records per second; 0 = write nothing (the log is still validated and served). */
    recordsPerSec: z.number().min(0).max(20_000).default(GUEST_DEFAULTS.recordsPerSec),
    /** Payload bytes per record; fixed by the disk's format once formatted. */
    payloadBytes: z
      .number()
      .int()
      .min(0)
      .max(1024 * 1024)
      .default(GUEST_DEFAULTS.payloadBytes),
    /** Flush after this many records ... */
    flushEveryRecords: z.number().int().min(1).max(1_000_000).default(GUEST_DEFAULTS.flushEveryRecords),
    /** ... or when the oldest unflushed record is this old, whichever comes first. */
    flushEveryMs: z.number().int().min(1).max(3_600_000).default(GUEST_DEFAULTS.flushEveryMs),
    /** A quiesced guest thaws itself after this long, so a host that never thaws cannot freeze it. */
    autoThawMs: z.number().int().min(1).max(3_600_000).default(GUEST_DEFAULTS.autoThawMs),
  })
  .strict();

export type GuestConfig = Readonly<z.output<typeof guestConfigSchema>>;
export type GuestConfigInput = z.input<typeof guestConfigSchema>;

/** Parses and freezes a config; throws SECONDSITE_ERR_INVALID_ARGUMENT naming every bad field. */
export function parseGuestConfig(raw: unknown): GuestConfig {
  const r = guestConfigSchema.safeParse(raw);
  if (!r.success)
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `invalid guest config: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}; fix the config file`,
    );
  return Object.freeze(r.data);
}

/** Where an NBD URI points. Only `nbd+unix` is supported by the guest for now. */
export interface NbdAddress {
  readonly socketPath: string;
  readonly exportName: string;
}

/** Parses `nbd+unix:///<export>?socket=<path>` (the form the host agent hands out). */
export function parseNbdUri(uri: string): NbdAddress {
  const m = /^nbd\+unix:\/\/\/([^?]*)\?(.*)$/.exec(uri);
  const params = new URLSearchParams(m?.[2] ?? '');
  const socketPath = params.get('socket');
  if (!m || !socketPath)
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `unsupported NBD URI '${uri}': the guest takes nbd+unix:///<export>?socket=<path>`,
      { uri },
    );
  return { socketPath, exportName: decodeURIComponent(m[1] ?? '') };
}

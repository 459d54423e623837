/** Validation of VM specs, once, at define time (every driver calls `parseVmSpec`). */
import { isIPv4 } from 'node:net';
import { z } from 'zod';
import { SecondsiteError } from '../../domain/errors.js';
import type { VmSpec } from './vm-driver.js';

/** VM ids name directories and guest ids: 1-40 letters, digits, '-', '_' (a UUID fits). */
export const VM_ID_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,39}$/;
/** Network namespace names: short plain names. */
const NETNS_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,31}$/;

const plainId = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/, '1-64 letters, digits, ".", "-" or "_"');

const vmSpecSchema = z
  .object({
    vmId: z
      .string()
      .regex(VM_ID_PATTERN, '1-40 letters, digits, "-" or "_", starting with a letter or digit'),
    name: z.string().min(1).max(256),
    disks: z
      .array(
        z
          .object({
            diskId: plainId,
            nbdUri: z
              .string()
              .regex(/^nbd\+unix:\/\/\/[^?]*\?(.*&)?socket=/, 'nbd+unix:///<export>?socket=<path>'),
          })
          .strict(),
      )
      .min(1, 'a VM needs at least one disk (the first holds its log)'),
    nics: z.array(
      z
        .object({
          nicId: plainId,
          network: z.string().min(1).max(256),
          ipv4: z.string().refine((s) => isIPv4(s), 'an IPv4 address'),
          port: z.number().int().min(0).max(65535),
          netns: z.string().regex(NETNS_PATTERN, '1-32 letters, digits, "-" or "_"').optional(),
        })
        .strict(),
    ),
    guest: z
      .object({
        recordsPerSec: z.number().min(0).max(20_000).optional(),
        payloadBytes: z
          .number()
          .int()
          .min(0)
          .max(1024 * 1024)
          .optional(),
        flushEveryRecords: z.number().int().min(1).max(1_000_000).optional(),
        flushEveryMs: z.number().int().min(1).max(3_600_000).optional(),
        autoThawMs: z.number().int().min(1).max(3_600_000).optional(),
      })
      .strict(),
  })
  .strict();

/** Checks a spec and returns a plain copy; SECONDSITE_ERR_INVALID_ARGUMENT names every bad field. */
export function parseVmSpec(raw: unknown): VmSpec {
  const r = vmSpecSchema.safeParse(raw);
  if (!r.success)
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `invalid VM spec: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}; fix the spec and define the VM again`,
    );
  const spec = r.data as VmSpec;
  const namespaces = new Set(spec.nics.map((n) => n.netns ?? ''));
  if (namespaces.size > 1)
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `VM ${spec.vmId}: all NICs must be in the same network namespace (or none); got ${[...namespaces].map((n) => n || '(host)').join(', ')}`,
    );
  const nicIds = new Set(spec.nics.map((n) => n.nicId));
  const diskIds = new Set(spec.disks.map((d) => d.diskId));
  if (nicIds.size !== spec.nics.length || diskIds.size !== spec.disks.length)
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `VM ${spec.vmId}: disk ids and NIC ids must be unique`,
    );
  return spec;
}

/** Stable JSON for comparing specs (keys sorted). */
export function canonicalSpec(spec: VmSpec): string {
  return JSON.stringify(spec, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
        )
      : v,
  );
}

/**
 * Control API bodies for VMs (`/v1/vms`) and host-level failover (`/v1/replicas/:id/...`). A VM here is
 * a definition on this host whose disks are this host's disks; the runtime driver runs it.
 */
import { z } from 'zod';
import { diskIdSchema } from './disks.schema.js';

const vmIdSchema = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_-]{0,39}$/, 'a VM id is 1-40 letters, digits, "-" or "_"');

export const vmNicSchema = z
  .object({
    nicId: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/),
    network: z.string().min(1).max(256),
    ipv4: z.string().ip({ version: 'v4' }),
    /** Port of the guest's service; 0 = any free port. */
    port: z.number().int().min(0).max(65535),
  })
  .strict();

export const vmGuestSchema = z
  .object({
    recordsPerSec: z.number().min(0).max(20_000).optional(),
    payloadBytes: z
      .number()
      .int()
      .min(0)
      .max(1024 * 1024)
      .optional(),
    flushEveryRecords: z.number().int().min(1).optional(),
    flushEveryMs: z.number().int().min(1).optional(),
  })
  .strict();

/** What a VM is, apart from where its disks are: replicated with it and used to start it elsewhere. */
export const vmTemplateSchema = z
  .object({
    name: z.string().min(1).max(256).optional(),
    nics: z.array(vmNicSchema).max(8).default([]),
    guest: vmGuestSchema.default({}),
  })
  .strict();

export const createVmBodySchema = z
  .object({
    vmId: vmIdSchema,
    name: z.string().min(1).max(256).optional(),
    /** The boot disk first (it holds the guest's log). */
    diskIds: z.array(diskIdSchema).min(1).max(16),
    nics: z.array(vmNicSchema).max(8).default([]),
    guest: vmGuestSchema.default({}),
  })
  .strict();

export const shutdownVmBodySchema = z
  .object({ timeoutMs: z.number().int().min(100).max(600_000).default(30_000) })
  .strict();

const pointIdSchema = z.string().regex(/^(latest|rp-[0-9]{1,18})$/, 'a point id (rp-N) or "latest"');

export const testFailoverBodySchema = z
  .object({
    pointId: pointIdSchema.default('latest'),
    vm: vmTemplateSchema.optional(),
  })
  .strict();

export const failoverBodySchema = z
  .object({
    pointId: pointIdSchema.default('latest'),
    /** Fail over even if the primary VM still answers (split-brain risk: the operator's call). */
    force: z.boolean().default(false),
    vm: vmTemplateSchema.optional(),
  })
  .strict();

export const changePointBodySchema = z.object({ pointId: pointIdSchema }).strict();

export type CreateVmBody = z.output<typeof createVmBodySchema>;
export type VmTemplate = z.output<typeof vmTemplateSchema>;

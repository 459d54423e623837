/**
 * Replicated items in the vault's REST API (docs/design/protection.md): one protected VM each, with its
 * placement, protection state, health, RPO (the lag of its last point), last point and points.
 */
import { z } from 'zod/v4';
import { recoveryPointStatusSchema } from './replication-status.schema.js';

export const PROTECTION_STATES = [
  'Enabling',
  'InitialReplicationInProgress',
  'Protected',
  'EnableFailed',
  'Disabling',
] as const;

export const replicatedItemSchema = z.object({
  replicatedItemId: z.string(),
  vmId: z.string(),
  vmName: z.string(),
  primaryManagementServerId: z.string(),
  primaryHostId: z.string(),
  pairingId: z.string(),
  recoveryManagementServerId: z.string(),
  /** Null until the enable job placed the replica. */
  replicaHostId: z.string().nullable(),
  storageLocation: z.string().nullable(),
  protectionState: z.enum(PROTECTION_STATES),
  replicationHealth: z.enum(['Normal', 'Warning', 'Critical']),
  healthReasons: z.array(z.string()),
  /** The primary host's own word for the relationship (replicating, resync-required ...). */
  hostProtectionState: z.string().nullable(),
  lastPointId: z.string().nullable(),
  lastPointCutAt: z.string().nullable(),
  /** RPO now: seconds since the last point's cut, as last reported. */
  lagSeconds: z.number().nullable(),
  lastError: z.object({ code: z.string(), message: z.string() }).nullable(),
  enableJobId: z.string().nullable(),
  statusReportedAt: z.string().nullable(),
  createdAt: z.string(),
});

export const replicatedItemDetailSchema = replicatedItemSchema.extend({
  points: z.array(recoveryPointStatusSchema),
});

export const enableReplicationBodySchema = z
  .object({
    /** The management server holding the VMs (the primary side). */
    managementServerId: z.string().min(1).max(100),
    /** The VMs to protect: `VM_ID`, or `HOST_ID/VM_ID` (a VM id is its host's; needed when two hosts have it). */
    vmIds: z.array(z.string().min(1).max(130)).min(1).max(1000).optional(),
    /** Protect every VM of this primary cloud that is not protected yet. */
    cloudId: z.string().min(1).max(100).optional(),
  })
  .strict()
  .refine((b) => (b.vmIds !== undefined) !== (b.cloudId !== undefined), {
    message: 'give either vmIds or cloudId (not both)',
  });

export const replicatedItemListSchema = z.object({
  items: z.array(replicatedItemSchema),
  next: z.string().nullable().describe('cursor for ?after= of the next page; null: last page'),
});

export const enableReplicationResultSchema = z.object({
  items: z.array(
    z.object({
      replicatedItemId: z.string(),
      vmId: z.string(),
      vmName: z.string(),
      jobId: z.string().nullable(),
    }),
  ),
});

export const disableReplicationResultSchema = z.object({
  replicatedItemId: z.string(),
  vmName: z.string(),
  /** Whether the replica (and its recovery points) is deleted on the replica host. */
  deleteReplica: z.boolean(),
  /** Forced: the item is removed from the vault without contacting its hosts (a site that is gone). */
  force: z.boolean(),
  jobId: z.string(),
});

export type ReplicatedItemView = z.infer<typeof replicatedItemSchema>;
export type ReplicatedItemDetail = z.infer<typeof replicatedItemDetailSchema>;
export type DisableReplicationResult = z.infer<typeof disableReplicationResultSchema>;
export type EnableReplicationRequest = z.infer<typeof enableReplicationBodySchema>;

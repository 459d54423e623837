/**
 * Request and response bodies of the vault's cloud pairing routes (`/v1/cloud-pairings`): Site
 * Recovery's protection container mapping, a primary cloud -> a recovery cloud with a replication
 * policy (docs/design/vault.md section 6). Clouds are named by their management server's id and the
 * cloud's id (the CLI resolves names).
 */
import { z } from 'zod/v4';
import { fabricIdSchema } from './inventory.schema.js';
import { nameSchema } from './vault-api.schema.js';

const msId = z.string().regex(/^[a-z]+_[0-9a-f]{1,64}$/, 'a management server id, e.g. ms_3f9a...');

export const createPairingBodySchema = z
  .object({
    primaryManagementServerId: msId,
    primaryCloudId: fabricIdSchema,
    recoveryManagementServerId: msId,
    recoveryCloudId: fabricIdSchema,
    /** The replication policy's name. */
    policy: nameSchema,
  })
  .strict();

const cloudEnd = z.object({
  managementServerId: z.string(),
  managementServerName: z.string(),
  cloudId: z.string(),
  cloudName: z.string(),
  state: z.enum(['present', 'missing']),
});

export const pairingSchema = z.object({
  pairingId: z.string(),
  primary: cloudEnd,
  recovery: cloudEnd,
  policyId: z.string(),
  policyName: z.string(),
  createdAt: z.string(),
});

export const pairingListSchema = z.object({
  pairings: z.array(pairingSchema),
  next: z.string().nullable().describe('cursor for ?after= of the next page; null: last page'),
});
export const pairingDeletedSchema = z.object({ pairingId: z.string(), deleted: z.literal(true) });

export type CreatePairingBody = z.infer<typeof createPairingBodySchema>;
export type PairingView = z.infer<typeof pairingSchema>;

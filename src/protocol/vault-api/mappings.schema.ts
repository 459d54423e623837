/**
 * Request and response bodies of the vault's network and storage mapping routes
 * (`/v1/network-mappings`, `/v1/storage-mappings`; docs/design/vault.md section 6). A network mapping
 * says which VM network a failed-over VM's NIC joins: a VM network of a paired primary cloud -> a VM
 * network available to that pairing's recovery cloud. A storage mapping says where replicas go: a
 * storage classification of one management server -> one of the recovery management server. One
 * mapping per source.
 */
import { z } from 'zod/v4';
import { fabricIdSchema } from './inventory.schema.js';

const msId = z.string().regex(/^[a-z]+_[0-9a-f]{1,64}$/, 'a management server id, e.g. ms_3f9a...');
const classification = z
  .string()
  .min(1, 'a storage classification name is not empty (unclassified storage cannot be mapped)')
  .max(63);

export const createNetworkMappingBodySchema = z
  .object({
    sourceManagementServerId: msId,
    sourceVmNetworkId: fabricIdSchema,
    targetManagementServerId: msId,
    targetVmNetworkId: fabricIdSchema,
  })
  .strict();

export const createStorageMappingBodySchema = z
  .object({
    sourceManagementServerId: msId,
    sourceClassification: classification,
    targetManagementServerId: msId,
    targetClassification: classification,
  })
  .strict();

const networkEnd = z.object({
  managementServerId: z.string(),
  managementServerName: z.string(),
  vmNetworkId: z.string(),
  vmNetworkName: z.string(),
  state: z.enum(['present', 'missing']),
});

const storageEnd = z.object({
  managementServerId: z.string(),
  managementServerName: z.string(),
  classification: z.string(),
  state: z.enum(['present', 'missing']),
});

export const networkMappingSchema = z.object({
  mappingId: z.string(),
  source: networkEnd,
  target: networkEnd,
  createdAt: z.string(),
});

export const storageMappingSchema = z.object({
  mappingId: z.string(),
  source: storageEnd,
  target: storageEnd,
  createdAt: z.string(),
});

const next = z.string().nullable().describe('cursor for ?after= of the next page; null: last page');
export const networkMappingListSchema = z.object({ networkMappings: z.array(networkMappingSchema), next });
export const storageMappingListSchema = z.object({ storageMappings: z.array(storageMappingSchema), next });
export const mappingDeletedSchema = z.object({ mappingId: z.string(), deleted: z.literal(true) });

export type CreateNetworkMappingBody = z.infer<typeof createNetworkMappingBodySchema>;
export type CreateStorageMappingBody = z.infer<typeof createStorageMappingBodySchema>;
export type NetworkMappingView = z.infer<typeof networkMappingSchema>;
export type StorageMappingView = z.infer<typeof storageMappingSchema>;

/**
 * Response bodies of the vault's fabric read routes (`/v1/clouds`, `/v1/hosts`, `/v1/vm-networks`,
 * `/v1/vms`, `/v1/storage-classifications`): what the providers' inventories hold, scoped by
 * management server. Lists are pages: `?limit=N` (default 100, at most 1000) and `?after=CURSOR` with
 * the `next` cursor of the previous page (null on the last page).
 *
 * `state` is `present`, or `missing` for an object a pairing or mapping uses that its management
 * server no longer reports (kept so the pairing or mapping does not vanish; an alert says so).
 */
import { z } from 'zod/v4';

export const fabricStateSchema = z.enum(['present', 'missing']);

/** Where an object lives: its management server's id and name. */
const owner = {
  managementServerId: z.string(),
  managementServerName: z.string(),
};

export const cloudPairingRefSchema = z.object({
  pairingId: z.string(),
  /** This cloud's role in the pairing. */
  role: z.enum(['primary', 'recovery']),
  /** The other cloud of the pairing. */
  peerManagementServerId: z.string(),
  peerManagementServerName: z.string(),
  peerCloudId: z.string(),
  peerCloudName: z.string(),
  policyName: z.string(),
});

export const cloudViewSchema = z.object({
  ...owner,
  cloudId: z.string(),
  name: z.string(),
  state: fabricStateSchema,
  missingSince: z.string().nullable(),
  hostGroupIds: z.array(z.string()),
  /** Hosts in the cloud's host groups (and their nested groups). */
  hostIds: z.array(z.string()),
  capacity: z.object({
    vmCount: z.number().nullable(),
    memoryBytes: z.number().nullable(),
    storageBytes: z.number().nullable(),
  }),
  /** VMs the inventory places in this cloud. */
  vmCount: z.number(),
  /** The cloud's pairing, or null when it is not paired. */
  pairing: cloudPairingRefSchema.nullable(),
});

export const storageLocationViewSchema = z.object({
  name: z.string(),
  storageClassification: z.string(),
  capacityBytes: z.number(),
  freeBytes: z.number(),
});

export const hostViewSchema = z.object({
  ...owner,
  hostId: z.string(),
  hostGroupId: z.string().nullable(),
  hostGroupName: z.string().nullable(),
  connectionState: z.enum(['connected', 'disconnected']),
  replicationAddress: z.string(),
  replicationPort: z.number(),
  memoryBytes: z.number(),
  cpuCount: z.number(),
  storageLocations: z.array(storageLocationViewSchema),
  /** When the host's certificate ends (its management server renews it well before); null: not reported. */
  certNotAfter: z.string().nullable(),
  /** Clouds whose host groups hold this host. */
  cloudIds: z.array(z.string()),
});

export const vmNetworkViewSchema = z.object({
  ...owner,
  vmNetworkId: z.string(),
  name: z.string(),
  state: fabricStateSchema,
  missingSince: z.string().nullable(),
  cloudIds: z.array(z.string()),
  subnets: z.array(
    z.object({
      cidr: z.string(),
      gateway: z.string().nullable(),
      ipPools: z.array(
        z.object({ ipPoolId: z.string(), name: z.string(), rangeStart: z.string(), rangeEnd: z.string() }),
      ),
    }),
  ),
  /** The network mapping from this network, or null. */
  mappedTo: z
    .object({ mappingId: z.string(), managementServerId: z.string(), vmNetworkId: z.string() })
    .nullable(),
});

export const vmViewSchema = z.object({
  ...owner,
  vmId: z.string(),
  name: z.string(),
  hostId: z.string(),
  cloudId: z.string().nullable(),
  cloudName: z.string().nullable(),
  powerState: z.string(),
  disks: z.array(z.object({ diskId: z.string(), sizeBytes: z.number() })),
  nics: z.array(
    z.object({ nicId: z.string(), vmNetworkId: z.string().nullable(), ipAddress: z.string().nullable() }),
  ),
});

export const storageClassificationViewSchema = z.object({
  ...owner,
  name: z.string(),
  state: fabricStateSchema,
  missingSince: z.string().nullable(),
  /** Storage locations of this classification, over all hosts of the management server. */
  locationCount: z.number(),
  capacityBytes: z.number(),
  freeBytes: z.number(),
  /** The storage mapping from this classification, or null. */
  mappedTo: z
    .object({ mappingId: z.string(), managementServerId: z.string(), classification: z.string() })
    .nullable(),
});

const page = { next: z.string().nullable().describe('cursor for ?after= of the next page; null: last page') };

export const cloudListSchema = z.object({ clouds: z.array(cloudViewSchema), ...page });
export const hostListSchema = z.object({ hosts: z.array(hostViewSchema), ...page });
export const vmNetworkListSchema = z.object({ vmNetworks: z.array(vmNetworkViewSchema), ...page });
export const vmListSchema = z.object({ vms: z.array(vmViewSchema), ...page });
export const storageClassificationListSchema = z.object({
  storageClassifications: z.array(storageClassificationViewSchema),
  ...page,
});

export type CloudView = z.infer<typeof cloudViewSchema>;
export type HostView = z.infer<typeof hostViewSchema>;
export type VmNetworkView = z.infer<typeof vmNetworkViewSchema>;
export type VmView = z.infer<typeof vmViewSchema>;
export type StorageClassificationView = z.infer<typeof storageClassificationViewSchema>;

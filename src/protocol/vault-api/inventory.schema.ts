/**
 * A management server's inventory as its provider sends it to the vault (docs/design/vault.md
 * section 6): host groups, hosts with their replica storage locations, clouds (host groups +
 * capacity), VM networks with subnets and IP pools, and VMs with their placement, disks and NICs.
 *
 * Contract: the provider sends the whole document (`PUT /v1/management-servers/:id/inventory`)
 * whenever its `inventoryVersion` differs from the one the vault answered in the last heartbeat; the
 * vault replaces that management server's fabric with it in one transaction. Ids are made by the
 * management server, unique within it, and stable (a rename keeps the id). The vault scopes every id
 * by the management server, so the same id on two management servers names two objects.
 */
import { z } from 'zod/v4';
import { nameSchema } from './vault-api.schema.js';

/** A management-server-made id: a prefix and random letters, e.g. `cloud-3f9k2...`. */
export const fabricIdSchema = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,99}$/, 'an id is 1-100 lower-case letters, digits and dashes');

/** A host id (the CN of its certificate): a lower-case DNS label. */
export const hostIdSchema = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'a host id is a lower-case DNS label');

const bytes = z.number().int().min(0);
const ipv4 = z.ipv4();

export const hostGroupSchema = z
  .object({
    hostGroupId: fabricIdSchema,
    name: nameSchema,
    /** Host groups nest (VMM's "All Hosts" tree); null = top level. */
    parentHostGroupId: fabricIdSchema.nullable(),
  })
  .strict();

export const storageLocationSchema = z
  .object({
    /** The host's replica storage location name (host.json `replication.storageLocations`). */
    name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/),
    /** Storage classification it belongs to (what a storage mapping maps); '' = unclassified. */
    storageClassification: z.string().max(63),
    capacityBytes: bytes,
    freeBytes: bytes,
  })
  .strict();

export const inventoryHostSchema = z
  .object({
    hostId: hostIdSchema,
    hostGroupId: fabricIdSchema.nullable(),
    /** Whether the management server reached the host's agent at its last inventory read. */
    connectionState: z.enum(['connected', 'disconnected']),
    /** Where other hosts replicate to (and the manager calls the peer API). */
    replicationAddress: z.string().max(253),
    replicationPort: z.number().int().min(1).max(65535),
    memoryBytes: bytes,
    cpuCount: z.number().int().min(0),
    storageLocations: z.array(storageLocationSchema).max(64),
    /** When the host's certificate ends (ISO 8601); absent from management servers that predate it. */
    certNotAfter: z.iso.datetime().optional(),
  })
  .strict();

export const cloudSchema = z
  .object({
    cloudId: fabricIdSchema,
    name: nameSchema,
    hostGroupIds: z.array(fabricIdSchema).max(1000),
    /** Capacity the cloud offers (VMM's cloud capacity); null = unlimited. */
    capacity: z
      .object({
        vmCount: z.number().int().min(0).nullable(),
        memoryBytes: bytes.nullable(),
        storageBytes: bytes.nullable(),
      })
      .strict(),
  })
  .strict();

export const ipPoolSchema = z
  .object({
    ipPoolId: fabricIdSchema,
    name: nameSchema,
    rangeStart: ipv4,
    rangeEnd: ipv4,
  })
  .strict();

export const subnetSchema = z
  .object({
    /** e.g. 10.1.0.0/24 */
    cidr: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'a subnet is an IPv4 CIDR, e.g. 10.1.0.0/24'),
    gateway: ipv4.nullable(),
    ipPools: z.array(ipPoolSchema).max(100),
  })
  .strict();

export const vmNetworkSchema = z
  .object({
    vmNetworkId: fabricIdSchema,
    name: nameSchema,
    /** Clouds whose VMs may use this network. */
    cloudIds: z.array(fabricIdSchema).max(1000),
    subnets: z.array(subnetSchema).max(100),
  })
  .strict();

export const inventoryVmSchema = z
  .object({
    /** The VM's id on its host (host agent `vms`). */
    vmId: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/),
    name: z.string().min(1).max(200),
    hostId: hostIdSchema,
    /** The cloud whose host groups hold the VM's host; null when none does. */
    cloudId: fabricIdSchema.nullable(),
    /** The host agent's VM power state; 'unknown' when the host is not reachable. */
    powerState: z.enum(['off', 'starting', 'running', 'stopping', 'quiesced', 'failed', 'unknown']),
    disks: z
      .array(z.object({ diskId: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/), sizeBytes: bytes }).strict())
      .max(64),
    nics: z
      .array(
        z
          .object({
            nicId: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/),
            /** The VM network the NIC is connected to (matched by name on the host); null = none known. */
            vmNetworkId: fabricIdSchema.nullable(),
            ipAddress: ipv4.nullable(),
          })
          .strict(),
      )
      .max(16),
  })
  .strict();

export const inventorySchema = z
  .object({
    /** Increases with every change the management server sees; the vault keeps the last it stored. */
    inventoryVersion: z.number().int().min(1),
    /**
     * The management server's site CA (PEM): it issues the certificates of its hosts. The vault hands
     * it to the management server of a paired cloud, whose replica hosts then trust this site's hosts
     * for the storage locations the pairing allows (trust group = this management server).
     */
    siteCaCertPem: z
      .string()
      .max(16 * 1024)
      .regex(/^-----BEGIN CERTIFICATE-----/, 'a PEM certificate'),
    /**
     * The VM that runs this management server, when it runs on one of its own hosts (single
     * management server topology): the vault refuses to protect it or to pair a cloud that holds it.
     */
    managementVm: z
      .object({ hostId: hostIdSchema, vmId: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/) })
      .strict()
      .nullable()
      .default(null),
    hostGroups: z.array(hostGroupSchema).max(10_000),
    hosts: z.array(inventoryHostSchema).max(10_000),
    clouds: z.array(cloudSchema).max(1000),
    vmNetworks: z.array(vmNetworkSchema).max(10_000),
    vms: z.array(inventoryVmSchema).max(100_000),
  })
  .strict();

export const inventoryAcceptedSchema = z.object({
  inventoryVersion: z.number().int(),
  /** False when the vault already had this version or a newer one (the document was ignored). */
  applied: z.boolean(),
});

export type Inventory = z.infer<typeof inventorySchema>;
export type InventoryHost = z.infer<typeof inventoryHostSchema>;
export type InventoryVm = z.infer<typeof inventoryVmSchema>;
export type Cloud = z.infer<typeof cloudSchema>;
export type VmNetwork = z.infer<typeof vmNetworkSchema>;

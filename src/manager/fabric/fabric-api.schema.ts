/**
 * The management server's fabric on its control socket (`secondsite manager ...`): request bodies and
 * the views it answers. Names are the people's handles (a host group, cloud or VM network is named in
 * every command); ids are what the vault gets in the inventory.
 */
import { z } from 'zod/v4';
import { SecondsiteError } from '../../domain/errors.js';
import type { ValidSubnet } from '../../domain/fabric/vm-network.rules.js';
import { nameSchema } from '../../protocol/vault-api/vault-api.schema.js';

const bytes = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const createHostGroupBodySchema = z
  .object({ name: nameSchema, parent: nameSchema.nullable().default(null) })
  .strict();

export const moveHostBodySchema = z.object({ hostGroup: nameSchema }).strict();

export const cloudCapacitySchema = z
  .object({
    vmCount: z.number().int().min(0).max(1_000_000).nullable().default(null),
    memoryBytes: bytes.nullable().default(null),
    storageBytes: bytes.nullable().default(null),
  })
  .strict();

export const createCloudBodySchema = z
  .object({
    name: nameSchema,
    hostGroups: z.array(nameSchema).min(1, 'a cloud needs at least one host group').max(1000),
    capacity: cloudCapacitySchema.default({ vmCount: null, memoryBytes: null, storageBytes: null }),
  })
  .strict();

export const createVmNetworkBodySchema = z
  .object({
    name: nameSchema,
    clouds: z.array(nameSchema).min(1, 'a VM network is available in at least one cloud').max(1000),
    subnets: z
      .array(
        z
          .object({
            cidr: z.string().max(18),
            gateway: z.string().max(15).nullable().default(null),
            ipPools: z
              .array(
                z
                  .object({
                    name: nameSchema.optional(),
                    rangeStart: z.string().max(15),
                    rangeEnd: z.string().max(15),
                  })
                  .strict(),
              )
              .max(100)
              .default([]),
          })
          .strict(),
      )
      .max(100),
  })
  .strict();

export const classifyStorageBodySchema = z
  .object({
    hostId: z.string().min(1).max(253),
    location: z.string().min(1).max(64),
    /** null removes the classification. */
    classification: nameSchema.nullable(),
  })
  .strict();

/** Parses a request body; a refusal names each wrong field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body ?? {});
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`);
  throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', problems.join('; '), { problems });
}

export interface HostGroupView {
  readonly hostGroupId: string;
  readonly name: string;
  /** The parent host group's name; null = top level. */
  readonly parent: string | null;
  readonly hosts: string[];
  /** The cloud that covers this group (directly or through a parent); null = none. */
  readonly cloud: string | null;
}

export interface CloudCapacity {
  readonly vmCount: number | null;
  readonly memoryBytes: number | null;
  readonly storageBytes: number | null;
}

export interface CloudView {
  readonly cloudId: string;
  readonly name: string;
  readonly hostGroups: string[];
  /** null = unlimited. */
  readonly capacity: CloudCapacity;
  readonly vmNetworks: string[];
  /** What the cloud holds now (hosts in its host groups, nested included, and their VMs). */
  readonly usage: {
    readonly hosts: string[];
    readonly vmCount: number;
    /** Sum of the VMs' disk sizes. */
    readonly storageBytes: number;
  };
}

export interface VmNetworkView {
  readonly vmNetworkId: string;
  readonly name: string;
  readonly clouds: string[];
  readonly subnets: ValidSubnet[];
}

export interface StorageLocationView {
  readonly hostId: string;
  readonly location: string;
  /** null = unclassified. */
  readonly classification: string | null;
  /** From the host's last report; null when the host has not reported this location (any more). */
  readonly capacityBytes: number | null;
  readonly freeBytes: number | null;
}

/** A create's answer: `created` false when the same object with the same settings existed. */
export type Created<V> = V & { readonly created: boolean };

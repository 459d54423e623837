/**
 * The host peer API (docs/design/failover.md section 8): JSON over HTTPS on the replication port, over
 * the hosts' mutual-TLS certificates, negotiated by ALPN `secondsite-peer/1`. A host may act only on
 * relationships that name it (the replica checks that the caller is the relationship's primary).
 */
import { z } from 'zod';
import { replicationPolicySchema, storageLocationSchema } from './relationships.schema.js';

export const PEER_ALPN = 'secondsite-peer/1';

/** Primary -> replica: fail over to the final point of a planned failover, and commit. */
export const peerPlannedFailoverBodySchema = z.object({ pointId: z.string().min(1).max(128) }).strict();

/** Old primary -> new primary: replicate the VM back to me (my seeded replica) at the failover's epoch. */
export const peerReverseBodySchema = z
  .object({
    address: z.string().min(1).max(253),
    port: z.number().int().min(1).max(65535),
    storageLocation: storageLocationSchema,
    policy: replicationPolicySchema,
  })
  .strict();

/** Control API: the one-command planned failover on the primary. */
export const plannedFailoverBodySchema = z
  .object({
    /** Graceful shutdown timeout of the VM. */
    timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    /** Then replicate back right away: this host's disks become the seeded replica of the new primary. */
    reverse: z.boolean().default(false),
    /** This host's replication address as the new primary must dial it (default: its listen host). */
    reverseAddress: z.string().min(1).max(253).optional(),
    /** This host's storage location for the reverse replica. */
    reverseStorageLocation: storageLocationSchema,
  })
  .strict();

export type PlannedFailoverBody = z.infer<typeof plannedFailoverBodySchema>;

/**
 * Replication status as a management server's provider reports it to the vault (docs/design/
 * protection.md section 6): for each relationship its hosts run as primary, its protection state,
 * health and last point; for each replica they keep, the recovery points. The vault matches them to
 * replicated items (primary side by (management server, VM id), replica side by (management server,
 * replica host, relationship id)) and keeps health, RPO, last point and the list of points.
 *
 * Sent whole (`PUT /v1/management-servers/:id/replication-status`) when it changed since the last
 * accepted one, at most once per heartbeat; it is not part of the inventory (it changes every cycle,
 * the inventory rarely).
 */
import { z } from 'zod/v4';
import { hostIdSchema } from './inventory.schema.js';

const id = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/);
const iso = z.iso.datetime();

export const relationshipStatusSchema = z
  .object({
    hostId: hostIdSchema,
    relationshipId: id,
    vmId: id,
    replicaHostId: hostIdSchema,
    /** The host's protection state (initial-replication, replicating, paused, resync-required ...). */
    protectionState: z.string().max(64),
    health: z.enum(['Normal', 'Warning', 'Critical']),
    healthReasons: z.array(z.string().max(500)).max(20),
    lastPointId: z.string().max(200).nullable(),
    lastPointCutAt: iso.nullable(),
    lagSeconds: z.number().min(0).nullable(),
    waitingFor: z.string().max(500).nullable(),
    lastError: z
      .object({ code: z.string().max(100), message: z.string().max(2000) })
      .strict()
      .nullable(),
  })
  .strict();

export const recoveryPointStatusSchema = z
  .object({
    pointId: z.string().max(200),
    cutAt: iso,
    consistency: z.enum(['crash-consistent', 'app-consistent']),
  })
  .strict();

export const replicaStatusSchema = z
  .object({
    hostId: hostIdSchema,
    relationshipId: id,
    storageLocation: z.string().max(64),
    /** Oldest first; the last one is the latest point. */
    points: z.array(recoveryPointStatusSchema).max(1000),
  })
  .strict();

export const replicationStatusSchema = z
  .object({
    relationships: z.array(relationshipStatusSchema).max(100_000),
    replicas: z.array(replicaStatusSchema).max(100_000),
  })
  .strict();

export type RelationshipStatus = z.infer<typeof relationshipStatusSchema>;
export type ReplicaStatus = z.infer<typeof replicaStatusSchema>;
export type ReplicationStatus = z.infer<typeof replicationStatusSchema>;

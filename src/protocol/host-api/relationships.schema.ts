/**
 * Control API bodies for replication relationships (primary side, `/v1/relationships`) and replicas
 * (replica side, `/v1/replicas`). A relationship replicates one VM (a set of disks) to one replica host
 * with a replication policy.
 */
import { z } from 'zod';
import { RESYNC_MODES, parseResyncWindow } from '../../domain/replication/resync-policy.js';
import { diskIdSchema } from './disks.schema.js';

export const plainIdSchema = z
  .string()
  .regex(
    /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$/,
    'an id is 1-64 letters, digits, "-" or "_", starting with a letter or digit',
  );

/** A named replica storage location of a host (its host.json maps it to a folder). */
export const storageLocationSchema = z
  .string()
  .regex(/^[a-zA-Z0-9_-]{1,64}$/, 'a storage location is 1-64 letters, digits, "-" or "_"')
  .default('default');

export const replicationPolicySchema = z
  .object({
    /** 30, 300 or 900 seconds like Hyper-V Replica, or 0 for continuous. */
    copyFrequencySeconds: z
      .number()
      .int()
      .refine(
        (n) => [0, 30, 300, 900].includes(n),
        'copy frequency is 30, 300, 900 seconds, or 0 for continuous',
      )
      .default(300),
    /** Hourly recovery points kept on the replica, besides the latest (0 = latest only). */
    retentionHours: z.number().int().min(0).max(720).default(24),
    compression: z.boolean().default(true),
    /** Replication bandwidth cap; absent = unlimited. */
    bandwidthLimitBytesPerSec: z
      .number()
      .int()
      .min(64 * 1024)
      .optional(),
    /**
     * App-consistent recovery points: every this many seconds the VM is quiesced for the cut (0 = off).
     * Site Recovery's policies allow 1-12 hours; the host accepts shorter periods for tests and labs.
     */
    appConsistentFrequencySeconds: z
      .number()
      .int()
      .refine(
        (n) => n === 0 || (n >= 5 && n <= 12 * 3600),
        'app-consistent frequency is 0 (off) or 5 s to 12 h',
      )
      .default(0),
    /**
     * When a resync that change tracking needs (unclean stop, failed flush) runs: at once, only when an
     * operator asks, or inside `resyncWindow` (docs/design/failover.md section 8.1).
     */
    resyncMode: z.enum(RESYNC_MODES).default('automatic'),
    /** 'HH:MM-HH:MM' in UTC (may wrap midnight); required with resyncMode 'window'. */
    resyncWindow: z
      .string()
      .refine((t) => {
        try {
          parseResyncWindow(t);
          return true;
        } catch {
          return false;
        }
      }, "the resync window is 'HH:MM-HH:MM' in UTC with start != end, e.g. '22:00-06:00'")
      .optional(),
    /** Transfer chunk (resume granularity). */
    chunkBytes: z
      .number()
      .int()
      .min(4096)
      .max(16 * 1024 * 1024)
      .default(1024 * 1024),
  })
  .strict()
  .refine((p) => p.resyncMode !== 'window' || p.resyncWindow !== undefined, {
    message: "resyncMode 'window' needs resyncWindow, e.g. '22:00-06:00' (UTC)",
    path: ['resyncWindow'],
  });

export const enableReplicationBodySchema = z
  .object({
    /** Defaults to the VM id. */
    relationshipId: plainIdSchema.optional(),
    vmId: plainIdSchema,
    diskIds: z.array(diskIdSchema).min(1).max(64),
    replica: z
      .object({
        hostId: z.string().min(1).max(253),
        address: z.string().min(1).max(253),
        port: z.number().int().min(1).max(65535),
        storageLocation: storageLocationSchema,
      })
      .strict(),
    policy: replicationPolicySchema.default({}),
    /**
     * The generation to start at (reverse replication: the epoch of the failover, which the replica's
     * seeded store has). Default 0, a first generation.
     */
    epoch: z.number().int().min(0).default(0),
    /**
     * 'network' (default): the first cycle copies every allocated block. 'existing-copy': the replica
     * already holds a copy (seeded: offline import, or reverse replication), so the first cycle is a
     * resync that compares digests and sends only what differs.
     */
    initialReplication: z.enum(['network', 'existing-copy']).default('network'),
    /**
     * Scheduled initial replication: no cycle runs before this instant (ISO 8601 with an offset, e.g.
     * '2026-11-23T01:00:00Z'). Absent or in the past: start now.
     */
    initialReplicationStartAt: z.string().datetime({ offset: true }).optional(),
  })
  .strict();

export const exportDiskBodySchema = z
  .object({
    /** An absolute folder path on this host; the image is written there as <diskId>.raw (sparse). */
    toDir: z.string().min(1).max(4096),
  })
  .strict();

export const importReplicaBodySchema = z
  .object({
    /** The folder holding <diskId>.raw images written by 'disk export' (moved in, on the same file system). */
    fromDir: z.string().min(1).max(4096),
    diskIds: z.array(diskIdSchema).min(1).max(64),
    storageLocation: storageLocationSchema,
  })
  .strict();

export const seedReplicaBodySchema = z
  .object({
    /** The local disks that become the replica's base (the VM must be off; they leave the disk store). */
    diskIds: z.array(diskIdSchema).min(1).max(64),
    /** The generation of the reverse relationship (the failover's epoch). */
    epoch: z.number().int().min(0),
    storageLocation: storageLocationSchema,
  })
  .strict();

export type EnableReplicationBody = z.infer<typeof enableReplicationBodySchema>;
export type ReplicationPolicy = z.infer<typeof replicationPolicySchema>;

export const exportPointBodySchema = z.object({ diskId: diskIdSchema.optional() }).strict();

export const ensureReplicaBodySchema = z
  .object({
    relationshipId: plainIdSchema,
    storageLocation: storageLocationSchema,
    epoch: z.number().int().min(0),
  })
  .strict();

export const resumeReplicationBodySchema = z
  .object({
    /** Move to this generation (after the replica cancelled a failover); never lower than the current. */
    epoch: z.number().int().min(0).optional(),
  })
  .strict();

/**
 * Request and response bodies of the vault's replication policy routes (`/v1/policies`). The field
 * rules and their messages come from domain/vault/replication-policy.ts: single-field rules are also
 * spelled here (so the OpenAPI document shows ranges and enums), rules across fields run as a check on
 * the whole create body, and an update is checked by the service after it merges the change.
 */
import { z } from 'zod/v4';
import { COPY_FREQUENCIES_SECONDS } from '../../domain/replication/copy-schedule.js';
import { RESYNC_MODES } from '../../domain/replication/resync-policy.js';
import {
  DEFAULT_POLICY_SETTINGS as D,
  INITIAL_REPLICATION_METHODS,
  MAX_APP_CONSISTENT_FREQUENCY_HOURS,
  MAX_OFFLINE_PATH_CHARS,
  MAX_POLICY_DESCRIPTION_CHARS,
  MAX_RETENTION_HOURS,
  POLICY_RULES,
  replicationPolicyProblems,
} from '../../domain/vault/replication-policy.js';
import { nameSchema } from './vault-api.schema.js';

const fields = {
  description: z.string().max(MAX_POLICY_DESCRIPTION_CHARS, POLICY_RULES.description),
  copyFrequencySeconds: z
    .literal(COPY_FREQUENCIES_SECONDS, { error: POLICY_RULES.copyFrequency })
    .describe('seconds between copies: 30, 300 or 900; 0 = continuous'),
  retentionHours: z
    .number({ error: POLICY_RULES.retention })
    .int({ error: POLICY_RULES.retention, abort: true })
    .min(0, POLICY_RULES.retention)
    .max(MAX_RETENTION_HOURS, POLICY_RULES.retention)
    .describe('hours of recovery points kept besides the latest; 0 = the latest only'),
  appConsistentFrequencyHours: z
    .number({ error: POLICY_RULES.appConsistent })
    .int({ error: POLICY_RULES.appConsistent, abort: true })
    .min(0, POLICY_RULES.appConsistent)
    .max(MAX_APP_CONSISTENT_FREQUENCY_HOURS, POLICY_RULES.appConsistent)
    .describe('hours between app-consistent points (0 = off); less than the retention when retention > 0'),
  compression: z.boolean(),
  replicationPort: z
    .number({ error: POLICY_RULES.port })
    .int({ error: POLICY_RULES.port, abort: true })
    .min(1, POLICY_RULES.port)
    .max(65535, POLICY_RULES.port),
  initialReplicationMethod: z.enum(INITIAL_REPLICATION_METHODS, {
    error: "the initial replication method is 'network' or 'offline'",
  }),
  offlineExportPath: z
    .string()
    .max(MAX_OFFLINE_PATH_CHARS)
    .describe('offline only: absolute path where the primary exports the disks'),
  offlineImportPath: z
    .string()
    .max(MAX_OFFLINE_PATH_CHARS)
    .describe('offline only: absolute path the replica imports the disks from'),
  initialReplicationStartAt: z
    .string()
    .max(100, POLICY_RULES.startAt)
    .describe("'now' or an ISO 8601 time with a zone"),
  deleteReplicaOnDisable: z.boolean(),
  resyncMode: z
    .enum(RESYNC_MODES, { error: `the resync mode is ${RESYNC_MODES.join(', ')}` })
    .describe('when a resync after an unclean stop runs'),
  resyncWindow: z.string().max(20).describe("'HH:MM-HH:MM' UTC; with resyncMode 'window' only"),
};

export const createPolicyBodySchema = z
  .object({
    name: nameSchema,
    description: fields.description.default(D.description),
    copyFrequencySeconds: fields.copyFrequencySeconds.default(300),
    retentionHours: fields.retentionHours.default(D.retentionHours),
    appConsistentFrequencyHours: fields.appConsistentFrequencyHours.default(D.appConsistentFrequencyHours),
    compression: fields.compression.default(D.compression),
    replicationPort: fields.replicationPort.default(D.replicationPort),
    initialReplicationMethod: fields.initialReplicationMethod.default(D.initialReplicationMethod),
    offlineExportPath: fields.offlineExportPath.optional(),
    offlineImportPath: fields.offlineImportPath.optional(),
    initialReplicationStartAt: fields.initialReplicationStartAt.default(D.initialReplicationStartAt),
    deleteReplicaOnDisable: fields.deleteReplicaOnDisable.default(D.deleteReplicaOnDisable),
    resyncMode: fields.resyncMode.default(D.resyncMode),
    resyncWindow: fields.resyncWindow.optional(),
  })
  .strict()
  .superRefine((body, ctx) => {
    // the rules across fields; a field that already failed its own rule is not reported twice
    const failed = new Set(ctx.issues.map((i) => i.path?.[0]));
    for (const p of replicationPolicyProblems(body))
      if (!failed.has(p.field)) ctx.addIssue({ code: 'custom', path: [p.field], message: p.message });
  });

/** Fields not given keep their values; `name`, if given, must be the policy's (renaming is refused). */
export const updatePolicyBodySchema = z
  .object({
    name: nameSchema.optional(),
    description: fields.description.optional(),
    copyFrequencySeconds: fields.copyFrequencySeconds.optional(),
    retentionHours: fields.retentionHours.optional(),
    appConsistentFrequencyHours: fields.appConsistentFrequencyHours.optional(),
    compression: fields.compression.optional(),
    replicationPort: fields.replicationPort.optional(),
    initialReplicationMethod: fields.initialReplicationMethod.optional(),
    offlineExportPath: fields.offlineExportPath.optional(),
    offlineImportPath: fields.offlineImportPath.optional(),
    initialReplicationStartAt: fields.initialReplicationStartAt.optional(),
    deleteReplicaOnDisable: fields.deleteReplicaOnDisable.optional(),
    resyncMode: fields.resyncMode.optional(),
    resyncWindow: fields.resyncWindow.optional(),
  })
  .strict();

export const policySchema = z.object({
  policyId: z.string(),
  name: z.string(),
  description: z.string(),
  copyFrequencySeconds: z.number(),
  retentionHours: z.number(),
  appConsistentFrequencyHours: z.number(),
  compression: z.boolean(),
  replicationPort: z.number(),
  initialReplicationMethod: z.enum(INITIAL_REPLICATION_METHODS),
  offlineExportPath: z.string().nullable(),
  offlineImportPath: z.string().nullable(),
  initialReplicationStartAt: z.string(),
  deleteReplicaOnDisable: z.boolean(),
  resyncMode: z.enum(RESYNC_MODES),
  resyncWindow: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const policyListSchema = z.object({ policies: z.array(policySchema) });
export const policyDeletedSchema = z.object({ name: z.string(), deleted: z.literal(true) });

export type CreatePolicyBody = z.infer<typeof createPolicyBodySchema>;
export type UpdatePolicyBody = z.infer<typeof updatePolicyBodySchema>;
export type PolicyView = z.infer<typeof policySchema>;

/**
 * The commands the vault sends a management server's provider for protection (docs/design/
 * protection.md section 5), with their results. The manager carries each out on its hosts over the
 * peer API (`/peer/v1/manager/...`).
 */
import { z } from 'zod/v4';
import { hostIdSchema } from './inventory.schema.js';

export const AUTHORIZATION_APPLY_COMMAND = 'authorization.apply';
export const RELATIONSHIP_ENABLE_COMMAND = 'replication.enable';
export const RELATIONSHIP_DISABLE_COMMAND = 'replication.disable';

const plainName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/);

/** Every host of the management server gets its list; a host not named gets an empty one. */
export const authorizationApplyBodySchema = z
  .object({
    revision: z.number().int().min(1),
    hosts: z.array(
      z
        .object({
          hostId: hostIdSchema,
          entries: z.array(
            z
              .object({
                primaryHostId: z.string().min(1).max(253),
                storageLocation: plainName,
                trustGroup: plainName,
              })
              .strict(),
          ),
          trustGroups: z.array(z.object({ name: plainName, caCertPem: z.string().min(1) }).strict()),
        })
        .strict(),
    ),
    /** Hosts whose acknowledgement the vault needs (the command fails if one of them did not apply it). */
    required: z.array(hostIdSchema),
  })
  .strict();

export const authorizationApplyResultSchema = z.object({
  applied: z.array(z.string()),
  failed: z.array(z.object({ hostId: z.string(), message: z.string() })),
});

export const relationshipEnableBodySchema = z
  .object({
    hostId: hostIdSchema,
    /** The host control API's enable body (protocol/host-api/relationships.schema.ts). */
    relationship: z.record(z.string(), z.unknown()),
  })
  .strict();

export const relationshipEnableResultSchema = z.object({
  relationshipId: z.string(),
  protectionState: z.string(),
});

export const relationshipDisableBodySchema = z
  .object({
    hostId: hostIdSchema,
    relationshipId: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/),
    deleteReplica: z.boolean(),
  })
  .strict();

/** The host's answer: `disabled` false when it did not know the relationship (already disabled). */
export const relationshipDisableResultSchema = z.object({
  disabled: z.boolean(),
  replicaDeleted: z.boolean().optional(),
});

export type AuthorizationApplyBody = z.infer<typeof authorizationApplyBodySchema>;
export type AuthorizationApplyResult = z.infer<typeof authorizationApplyResultSchema>;
export type RelationshipEnableBody = z.infer<typeof relationshipEnableBodySchema>;
export type RelationshipEnableResult = z.infer<typeof relationshipEnableResultSchema>;
export type RelationshipDisableBody = z.infer<typeof relationshipDisableBodySchema>;

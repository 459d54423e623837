/**
 * Request and response bodies of the vault's REST API (docs/design/vault.md). Written with zod's v4
 * API, whose `z.toJSONSchema` renders them into the OpenAPI document (`/openapi.json`): the schemas
 * validate requests and document them, one source.
 */
import { z } from 'zod/v4';
import { ROLES } from '../../domain/vault/rbac.js';

export const nameSchema = z
  .string()
  .regex(
    /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/,
    'a name is 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit',
  );

/** Lower-case DNS-style name (it becomes part of a certificate's CN). */
export const nodeNameSchema = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'a node name is a lower-case DNS label, e.g. node-1');

export const errorBodySchema = z.object({
  error: z.object({
    code: z.string().describe('stable SECONDSITE_ERR_* code (docs/reference/errors.md)'),
    message: z.string().describe('what was wrong and what to do'),
    retry: z.enum(['permanent', 'transient']).optional(),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});

// ---- users and tokens ----

export const roleSchema = z.enum(ROLES);

export const createUserBodySchema = z.object({ name: nameSchema, role: roleSchema }).strict();

export const userSchema = z.object({
  userId: z.string(),
  name: z.string(),
  role: roleSchema,
  createdAt: z.string(),
});

export const createTokenBodySchema = z
  .object({
    label: z.string().max(200).default(''),
    /** Days until the token stops working; default 90, at most 3650. */
    expiresInDays: z.number().int().min(1).max(3650).default(90),
  })
  .strict();

export const tokenCreatedSchema = z.object({
  tokenId: z.string(),
  /** Shown once: the vault keeps only its hash. */
  token: z.string(),
  expiresAt: z.string(),
});

// ---- registration ----

export const createRegistrationKeyBodySchema = z
  .object({
    /** Hours until the key expires: default 120 (5 days), at most 120. */
    expiresInHours: z.number().int().min(1).max(120).default(120),
  })
  .strict();

/** The key file `vault key create` writes and `manager register --key` reads. */
export const registrationKeyFileSchema = z
  .object({
    format: z.literal('secondsite-registration-key-1'),
    vaultId: z.string(),
    vaultName: z.string(),
    vaultUrl: z.string(),
    /** The vault CA certificate (PEM): the provider trusts the vault through it. */
    vaultCaCertPem: z.string(),
    keyId: z.string(),
    secret: z.string(),
    expiresAt: z.string(),
  })
  .strict();

/** A PEM certificate request (signCsr checks its form and signature). */
const csrPemSchema = z
  .string()
  .min(1)
  .max(16 * 1024);

export const registrationRequestSchema = z
  .object({
    vaultId: z.string().min(1).max(100),
    keyId: z.string().min(1).max(100),
    secret: z.string().min(1).max(200),
    /** The management server's name: a new one is created, or an existing one gets another node. */
    managementServerName: nameSchema,
    nodeName: nodeNameSchema.default('node-1'),
    /** PEM certificate request for the provider's key (made on the management server). */
    csrPem: csrPemSchema,
  })
  .strict();

export const registrationResultSchema = z.object({
  managementServerId: z.string(),
  managementServerName: z.string(),
  nodeName: z.string(),
  /** The provider's client certificate (PEM), signed by the vault CA. */
  certPem: z.string(),
  vaultCaCertPem: z.string(),
  heartbeatIntervalSeconds: z.number(),
});

/** `POST /v1/provider/certificate`: a provider renews its own certificate (certificate-renewal.md). */
export const certificateRenewalRequestSchema = z
  .object({
    /** PEM certificate request for the node's new key (made on the management server). */
    csrPem: csrPemSchema,
  })
  .strict();

export const certificateRenewalResultSchema = z.object({
  managementServerId: z.string(),
  nodeName: z.string(),
  /** The new certificate (PEM): the node's next one until the first request that presents it. */
  certPem: z.string(),
  serial: z.string(),
  notAfter: z.string(),
  vaultCaCertPem: z.string(),
});
export type CertificateRenewalResult = z.infer<typeof certificateRenewalResultSchema>;

// ---- management servers and providers ----

export const managementServerSchema = z.object({
  managementServerId: z.string(),
  name: z.string(),
  connectionState: z.enum(['connected', 'disconnected']),
  lastHeartbeatAt: z.string().nullable(),
  heartbeatIntervalSeconds: z.number(),
  nodes: z.array(
    z.object({
      nodeName: z.string(),
      registeredAt: z.string(),
      lastHeartbeatAt: z.string().nullable(),
      certNotAfter: z.string(),
    }),
  ),
  createdAt: z.string(),
});

export const heartbeatBodySchema = z
  .object({
    /** Increases whenever the management server's inventory changes (the vault asks for it then). */
    inventoryVersion: z.number().int().min(0).default(0),
    providerVersion: z.string().max(100).default(''),
  })
  .strict();

export const heartbeatResultSchema = z.object({
  heartbeatIntervalSeconds: z.number(),
  /** The inventory version the vault holds for this management server: the provider sends its
   * inventory (inventory.schema.ts) when its own version differs. */
  inventoryVersion: z.number().int(),
  serverTime: z.string(),
});

// ---- alerts and audit ----

export const alertSchema = z.object({
  alertId: z.string(),
  kind: z.string(),
  severity: z.enum(['Warning', 'Critical']),
  objectType: z.string(),
  objectId: z.string(),
  message: z.string(),
  raisedAt: z.string(),
  resolvedAt: z.string().nullable(),
});

export const auditEntrySchema = z.object({
  id: z.string(),
  at: z.string(),
  principal: z.string(),
  action: z.string(),
  object: z.string().nullable(),
  outcome: z.string(),
  requestId: z.string(),
});

export type RegistrationKeyFile = z.infer<typeof registrationKeyFileSchema>;
export type RegistrationRequest = z.infer<typeof registrationRequestSchema>;
export type RegistrationResult = z.infer<typeof registrationResultSchema>;
export type ManagementServerView = z.infer<typeof managementServerSchema>;
export type AlertView = z.infer<typeof alertSchema>;

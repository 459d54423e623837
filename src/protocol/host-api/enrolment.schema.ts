/**
 * Host enrolment into a management server (docs/design/vault.md section 6): the enrolment key file
 * `secondsite manager host enroll-key` writes, the request a host posts to the manager's enrolment
 * listener (`POST /enrol/v1/hosts`, HTTPS with a server certificate from the site CA), and the answer.
 *
 * Names in certificates of the site CA: hosts are their host id (no dots, host-config.ts); the manager
 * calls hosts as `manager.site` and serves enrolment as `enrol.manager.site`, names no host can have.
 */
import { z } from 'zod';

/** CN (and DNS SAN) of the management server's client certificate for the hosts' peer API. */
export const MANAGER_CALLER_CN = 'manager.site';
/** CN (and DNS SAN) of the enrolment listener's server certificate. */
export const ENROLMENT_SERVER_CN = 'enrol.manager.site';

export const ENROLMENT_PATH = '/enrol/v1/hosts';

/** Default and largest lifetime of an enrolment key. */
export const ENROLMENT_KEY_DEFAULT_HOURS = 24;
export const ENROLMENT_KEY_MAX_HOURS = 120;

/** A host id as host.json has it: one DNS label (so never a name with a dot, like the manager's). */
export const enrolmentHostIdSchema = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
    'a host id is 1-63 lowercase letters, digits and inner dashes',
  );

export const enrolmentKeyFileSchema = z
  .object({
    format: z.literal('secondsite-enrolment-key-1'),
    managementServerName: z.string().min(1),
    /** The enrolment listener, `https://host:port`. */
    managerUrl: z.string().url(),
    /** The site CA (PEM): the host trusts the enrolment listener through it, and keeps it. */
    siteCaCertPem: z.string().min(1),
    keyId: z.string().min(1),
    secret: z.string().min(1),
    expiresAt: z.string(),
  })
  .strict();

export const enrolmentRequestSchema = z
  .object({
    keyId: z.string().min(1).max(64),
    secret: z.string().min(1).max(128),
    /** From the key file: a key made by another management server is refused by name. */
    managementServerName: z.string().min(1).max(256).optional(),
    hostId: enrolmentHostIdSchema,
    csrPem: z
      .string()
      .min(1)
      .max(16 * 1024),
    /** Where the manager and other hosts reach this host's replication port (peer API). */
    replicationAddress: z.string().min(1).max(253),
    replicationPort: z.number().int().min(1).max(65535),
  })
  .strict();

export const enrolmentResultSchema = z.object({
  hostId: z.string(),
  managementServerName: z.string(),
  certPem: z.string(),
  siteCaCertPem: z.string(),
  /** SHA-256 fingerprint of the site CA certificate, as X509Certificate.fingerprint256 prints it. */
  siteCaFingerprint256: z.string(),
  managerCommonName: z.string(),
  certNotAfter: z.string(),
});

export type EnrolmentKeyFile = z.infer<typeof enrolmentKeyFileSchema>;
export type EnrolmentRequest = z.infer<typeof enrolmentRequestSchema>;
export type EnrolmentResult = z.infer<typeof enrolmentResultSchema>;

/** `GET /v1/hosts` on the manager's control socket: one enrolled host. */
export interface ManagedHostView {
  hostId: string;
  hostGroupId: string | null;
  replicationAddress: string;
  replicationPort: number;
  certSerial: string;
  certNotAfter: string;
  enrolledAt: string;
  connectionState: 'connected' | 'disconnected';
  lastContactAt: string | null;
  lastError: string | null;
  vmCount: number | null;
}

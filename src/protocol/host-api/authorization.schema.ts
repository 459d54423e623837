/**
 * The managed part of a replica host's authorization list (docs/design/vault.md section 6.2): entries
 * and the trust groups whose CAs issue their hosts' certificates, as the host's management server sets
 * them (derived from cloud pairings) or an administrator does with `secondsite host authorization set`.
 * It replaces the previous managed list whole; host.json's own entries stay beside it.
 */
import { z } from 'zod';

const plainName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'a plain name (letters, digits, "-", "_"), never a path');

export const managedAuthorizationEntrySchema = z
  .object({
    /** A host id, or a pattern with '*' as its whole first label. */
    primaryHostId: z.string().min(1).max(253),
    storageLocation: plainName,
    trustGroup: plainName,
  })
  .strict();

export const trustGroupSchema = z
  .object({
    name: plainName,
    /** The CA certificate(s) (PEM) that issue the certificates of this group's hosts. */
    caCertPem: z
      .string()
      .min(1)
      .max(64 * 1024),
  })
  .strict();

export const managedAuthorizationSchema = z
  .object({
    /** Increases with every change the sender makes; an older revision than the host holds is refused. */
    revision: z.number().int().min(1),
    entries: z.array(managedAuthorizationEntrySchema).max(10_000),
    trustGroups: z.array(trustGroupSchema).max(256),
  })
  .strict();

export type ManagedAuthorization = z.infer<typeof managedAuthorizationSchema>;

export interface AuthorizationView {
  /** Revision of the managed part (0: none set). */
  revision: number;
  entries: Array<{
    primaryHostId: string;
    storageLocation: string;
    trustGroup: string;
    /** Where the entry comes from. */
    source: 'host.json' | 'managed';
  }>;
  trustGroups: Array<{ name: string; source: 'local-ca' | 'managed'; caFingerprints: string[] }>;
}

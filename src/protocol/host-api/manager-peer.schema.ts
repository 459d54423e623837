/**
 * What a host agent tells its management server over the peer API (docs/design/vault.md section 6):
 * the host's inventory, read by the manager's host poller and kept in the manager's database, from
 * which the management server's inventory (vault-api/inventory.schema.ts) is assembled.
 */
import { z } from 'zod';

const bytes = z.number().int().min(0);

export const hostInventorySchema = z.object({
  hostId: z.string(),
  memoryBytes: bytes,
  cpuCount: z.number().int().min(0),
  /** Replica storage locations (host.json `replication.storageLocations`) with their file system's space. */
  storageLocations: z.array(z.object({ name: z.string(), capacityBytes: bytes, freeBytes: bytes })),
  vms: z.array(
    z.object({
      vmId: z.string(),
      name: z.string(),
      state: z.string(),
      disks: z.array(z.object({ diskId: z.string(), sizeBytes: bytes })),
      /** `network` is the VM network's name: the manager matches it to its VM networks. */
      nics: z.array(z.object({ nicId: z.string(), network: z.string(), ipv4: z.string() })),
    }),
  ),
});

export type HostInventory = z.infer<typeof hostInventorySchema>;

/**
 * Host certificate renewal (docs/design/certificate-renewal.md section 5): the manager asks the host
 * for a CSR of a new key (`POST /peer/v1/manager/certificate/request`), signs it with the site CA and
 * gives the certificate back (`POST /peer/v1/manager/certificate`), which the host installs and uses.
 */
export const HOST_CERTIFICATE_REQUEST_PATH = '/peer/v1/manager/certificate/request';
export const HOST_CERTIFICATE_INSTALL_PATH = '/peer/v1/manager/certificate';

export const hostCertificateRequestSchema = z.object({ csrPem: z.string() });

export const hostCertificateInstallBodySchema = z
  .object({
    certPem: z
      .string()
      .min(1)
      .max(16 * 1024),
  })
  .strict();

export const hostCertificateInstalledSchema = z.object({
  hostId: z.string(),
  serial: z.string(),
  notAfter: z.string(),
});
export type HostCertificateInstalled = z.infer<typeof hostCertificateInstalledSchema>;

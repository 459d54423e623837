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

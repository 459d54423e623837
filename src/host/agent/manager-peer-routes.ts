/**
 * Peer API routes for this host's management server (`/peer/v1/manager/*`, docs/design/vault.md
 * section 6): each one starts with `requireManagerCaller` (manager-caller.ts). Add more manager routes
 * here.
 *
 *   GET /peer/v1/manager/inventory   the host's inventory (protocol/host-api/manager-peer.schema.ts):
 *                                    memory and CPUs (node:os), replica storage locations with their
 *                                    file system's capacity and free bytes (statfs; free bytes rounded
 *                                    down to whole GiB, so the inventory, which the manager stores
 *                                    on every change, does not change with every write), and the VMs
 *                                    with their disks' sizes and their NICs.
 */
import { statfs } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import type { Route } from '../../control-api/control-server.js';
import type { HostInventory } from '../../protocol/host-api/manager-peer.schema.js';
import type { DiskService } from './disk-service.js';
import type { HostConfig } from './host-config.js';
import { requireManagerCaller } from './manager-caller.js';
import type { VmService } from './vm-service.js';

export interface ManagerPeerDeps {
  readonly config: HostConfig;
  readonly vms: VmService;
  readonly disks: DiskService;
}

const GIB = 1024 ** 3;

async function space(dir: string): Promise<{ capacityBytes: number; freeBytes: number }> {
  try {
    const s = await statfs(dir);
    const freeBytes = s.bavail * s.bsize;
    return { capacityBytes: s.blocks * s.bsize, freeBytes: freeBytes - (freeBytes % GIB) };
  } catch {
    return { capacityBytes: 0, freeBytes: 0 }; // not made yet: the replica service makes it at start
  }
}

/** This host's inventory as its manager reads it. */
export async function hostInventory(deps: ManagerPeerDeps): Promise<HostInventory> {
  const sizes = new Map((await deps.disks.list()).map((d) => [d.diskId, d.sizeBytes]));
  const locations = Object.entries(deps.config.replication.storageLocations).sort(([a], [b]) =>
    a < b ? -1 : 1,
  );
  return {
    hostId: deps.config.hostId,
    memoryBytes: totalmem(),
    cpuCount: cpus().length,
    storageLocations: await Promise.all(
      locations.map(async ([name, dir]) => ({ name, ...(await space(dir)) })),
    ),
    vms: (await deps.vms.list()).map((vm) => ({
      vmId: vm.vmId,
      name: vm.name,
      state: vm.state,
      // a disk that is not one of this host's disks (a failover's view of a replica) shows size 0
      disks: vm.diskIds.map((diskId) => ({ diskId, sizeBytes: sizes.get(diskId) ?? 0 })),
      nics: vm.nics.map((n) => ({ nicId: n.nicId, network: n.network, ipv4: n.ipv4 })),
    })),
  };
}

export function managerPeerRoutes(deps: () => ManagerPeerDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/peer/v1/manager/inventory',
      handler: async ({ callerHostId }) => {
        requireManagerCaller(callerHostId);
        return { body: await hostInventory(deps()) };
      },
    },
  ];
}

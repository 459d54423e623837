/**
 * Synthetic inventories for the vault's fabric tests: per cloud a host group (under one root group),
 * hosts with two classified storage locations, a VM network with a subnet and an IP pool, and VMs
 * with a disk and a NIC. Ids carry a prefix so two management servers' documents differ.
 */
import type { Inventory } from '../../src/protocol/vault-api/inventory.schema.js';

export const TEST_SITE_CA_PEM = '-----BEGIN CERTIFICATE-----\nMIIBtestonly\n-----END CERTIFICATE-----\n';

export interface SyntheticOptions {
  readonly version: number;
  /** Cloud names; the cloud id is `cloud-<name>`, its network `net-<name>` (name `<name>-net`). */
  readonly clouds: readonly string[];
  readonly hostsPerCloud?: number;
  readonly vmsPerHost?: number;
  /** Storage classifications of each host's two locations (default gold, silver). */
  readonly classifications?: readonly [string, string];
}

export function syntheticInventory(o: SyntheticOptions): Inventory {
  const hostsPerCloud = o.hostsPerCloud ?? 2;
  const vmsPerHost = o.vmsPerHost ?? 2;
  const [fast, bulk] = o.classifications ?? ['gold', 'silver'];
  const inv: Inventory = {
    inventoryVersion: o.version,
    siteCaCertPem: TEST_SITE_CA_PEM,
    managementVm: null,
    hostGroups: [{ hostGroupId: 'hg-all', name: 'All-Hosts', parentHostGroupId: null }],
    hosts: [],
    clouds: [],
    vmNetworks: [],
    vms: [],
  };
  o.clouds.forEach((name, c) => {
    const hg = `hg-${name}`;
    inv.hostGroups.push({ hostGroupId: hg, name: `${name}-hosts`, parentHostGroupId: 'hg-all' });
    inv.clouds.push({
      cloudId: `cloud-${name}`,
      name,
      hostGroupIds: [hg],
      capacity: { vmCount: 100, memoryBytes: null, storageBytes: 2 ** 40 },
    });
    const third = (c % 250) + 1;
    inv.vmNetworks.push({
      vmNetworkId: `net-${name}`,
      name: `${name}-net`,
      cloudIds: [`cloud-${name}`],
      subnets: [
        {
          cidr: `10.${third}.0.0/16`,
          gateway: `10.${third}.0.1`,
          ipPools: [
            {
              ipPoolId: `pool-${name}`,
              name: 'pool',
              rangeStart: `10.${third}.1.0`,
              rangeEnd: `10.${third}.200.255`,
            },
          ],
        },
      ],
    });
    for (let h = 0; h < hostsPerCloud; h++) {
      const hostId = `host-${name}-${h}`.toLowerCase();
      inv.hosts.push({
        hostId,
        hostGroupId: hg,
        connectionState: 'connected',
        replicationAddress: `${hostId}.example`,
        replicationPort: 8084,
        memoryBytes: 64 * 2 ** 30,
        cpuCount: 16,
        storageLocations: [
          { name: 'fast', storageClassification: fast ?? 'gold', capacityBytes: 1000, freeBytes: 600 },
          { name: 'bulk', storageClassification: bulk ?? 'silver', capacityBytes: 5000, freeBytes: 4000 },
        ],
      });
      for (let k = 0; k < vmsPerHost; k++) {
        const n = h * vmsPerHost + k;
        inv.vms.push({
          vmId: `vm-${name}-${h}-${k}`,
          name: `${name}-vm-${h}-${k}`,
          hostId,
          cloudId: `cloud-${name}`,
          powerState: 'running',
          disks: [{ diskId: 'd0', sizeBytes: 2 ** 30 }],
          nics: [
            {
              nicId: 'n0',
              vmNetworkId: `net-${name}`,
              ipAddress: `10.${third}.${1 + Math.floor(n / 250)}.${(n % 250) + 1}`,
            },
          ],
        });
      }
    }
  });
  return inv;
}

/**
 * The synthetic fabric of the `vault-scale` benchmark: management server `i` of `n` has a production
 * cloud (10 hosts, `vmsPerServer` VMs) and a recovery cloud (5 hosts, no VMs), each with its host
 * group and VM network. Server i's production cloud is paired with the recovery cloud of server
 * (i + n/2) mod n, so every server is primary for its own VMs and recovery for another server's. The
 * replication status a server reports follows from that: one relationship per own VM, one replica
 * (with `pointsPerItem` points) per VM of its partner placed on its recovery hosts.
 */
import type { z } from 'zod/v4';
import type { inventorySchema } from '../../src/protocol/vault-api/inventory.schema.js';
import type { ReplicationStatus } from '../../src/protocol/vault-api/replication-status.schema.js';

/** The document as sent (fields with a default may be left out). */
type Inventory = z.input<typeof inventorySchema>;

export const PROD_HOSTS = 10;
export const DR_HOSTS = 5;
export const STORAGE_LOCATION = 'fast';
const SITE_CA_PEM = '-----BEGIN CERTIFICATE-----\nMIIBbenchonly\n-----END CERTIFICATE-----\n';

export const prodHost = (i: number, h: number): string => `p${i}-h${h}`;
export const drHost = (i: number, h: number): string => `r${i}-h${h}`;
export const vmId = (i: number, k: number): string => `vm-${i}-${k}`;
/** The VM's host: VMs are spread round-robin over the production hosts. */
export const vmHost = (i: number, k: number): string => prodHost(i, k % PROD_HOSTS);
/** Where the VM's replica lives: a recovery host of the partner server. */
export const replicaHost = (partner: number, k: number): string => drHost(partner, k % DR_HOSTS);
export const partnerOf = (i: number, servers: number): number => (i + servers / 2) % servers;

export function scaleInventory(i: number, vmsPerServer: number, version: number): Inventory {
  const inv: Inventory = {
    inventoryVersion: version,
    siteCaCertPem: SITE_CA_PEM,
    hostGroups: [
      { hostGroupId: 'hg-all', name: 'All-Hosts', parentHostGroupId: null },
      { hostGroupId: 'hg-prod', name: 'prod-hosts', parentHostGroupId: 'hg-all' },
      { hostGroupId: 'hg-dr', name: 'dr-hosts', parentHostGroupId: 'hg-all' },
    ],
    hosts: [],
    clouds: [
      {
        cloudId: 'cloud-prod',
        name: 'prod',
        hostGroupIds: ['hg-prod'],
        capacity: { vmCount: 1000, memoryBytes: null, storageBytes: 2 ** 44 },
      },
      {
        cloudId: 'cloud-dr',
        name: 'dr',
        hostGroupIds: ['hg-dr'],
        capacity: { vmCount: 1000, memoryBytes: null, storageBytes: 2 ** 44 },
      },
    ],
    vmNetworks: ['prod', 'dr'].map((name, n) => ({
      vmNetworkId: `net-${name}`,
      name: `${name}-net`,
      cloudIds: [`cloud-${name}`],
      subnets: [
        {
          cidr: `10.${n * 100 + i}.0.0/16`,
          gateway: `10.${n * 100 + i}.0.1`,
          ipPools: [
            {
              ipPoolId: `pool-${name}`,
              name: 'pool',
              rangeStart: `10.${n * 100 + i}.1.0`,
              rangeEnd: `10.${n * 100 + i}.200.255`,
            },
          ],
        },
      ],
    })),
    vms: [],
  };
  const host = (hostId: string, hostGroupId: string): Inventory['hosts'][number] => ({
    hostId,
    hostGroupId,
    connectionState: 'connected',
    replicationAddress: `${hostId}.bench.example`,
    replicationPort: 8084,
    memoryBytes: 256 * 2 ** 30,
    cpuCount: 32,
    storageLocations: [
      { name: STORAGE_LOCATION, storageClassification: 'gold', capacityBytes: 2 ** 42, freeBytes: 2 ** 41 },
      { name: 'bulk', storageClassification: 'silver', capacityBytes: 2 ** 43, freeBytes: 2 ** 42 },
    ],
  });
  for (let h = 0; h < PROD_HOSTS; h++) inv.hosts.push(host(prodHost(i, h), 'hg-prod'));
  for (let h = 0; h < DR_HOSTS; h++) inv.hosts.push(host(drHost(i, h), 'hg-dr'));
  for (let k = 0; k < vmsPerServer; k++) {
    inv.vms.push({
      vmId: vmId(i, k),
      name: `ms${i}-vm-${k}`,
      hostId: vmHost(i, k),
      cloudId: 'cloud-prod',
      powerState: 'running',
      disks: [
        { diskId: 'd0', sizeBytes: 40 * 2 ** 30 },
        { diskId: 'd1', sizeBytes: 100 * 2 ** 30 },
      ],
      nics: [
        {
          nicId: 'n0',
          vmNetworkId: 'net-prod',
          ipAddress: `10.${i}.${1 + Math.floor(k / 250)}.${(k % 250) + 1}`,
        },
      ],
    });
  }
  return inv;
}

/** The copy frequency of the benchmark's policy: a new point every 5 minutes. */
export const COPY_FREQUENCY_MS = 300_000;

/**
 * Server i's replication status at `now`, as a manager reports it: every relationship healthy, its
 * last point the latest cut on the 5-minute grid and its lag the time since (so the relationships
 * change at every report, as the lag does); `pointsPerItem` points per replica it keeps, one every
 * 5 minutes (so the replicas change once per copy interval, not at every report).
 */
export function scaleStatus(
  i: number,
  servers: number,
  vmsPerServer: number,
  pointsPerItem: number,
  now: number,
): ReplicationStatus {
  const partner = partnerOf(i, servers);
  const cutMs = Math.floor(now / COPY_FREQUENCY_MS) * COPY_FREQUENCY_MS;
  const relationships: ReplicationStatus['relationships'] = [];
  const replicas: ReplicationStatus['replicas'] = [];
  for (let k = 0; k < vmsPerServer; k++) {
    relationships.push({
      hostId: vmHost(i, k),
      relationshipId: vmId(i, k),
      vmId: vmId(i, k),
      replicaHostId: replicaHost(partner, k),
      protectionState: 'replicating',
      health: 'Normal',
      healthReasons: [],
      lastPointId: `pt-${cutMs}`,
      lastPointCutAt: new Date(cutMs).toISOString(),
      lagSeconds: Math.round((now - cutMs) / 1000),
      waitingFor: null,
      lastError: null,
    });
    // the replicas this server keeps are the partner's VMs (the pairing is symmetric: partner of partner = i)
    const points: ReplicationStatus['replicas'][number]['points'] = [];
    for (let p = pointsPerItem - 1; p >= 0; p--) {
      const at = cutMs - p * COPY_FREQUENCY_MS;
      points.push({
        pointId: `pt-${at}`,
        cutAt: new Date(at).toISOString(),
        consistency: p % 12 === 0 ? 'app-consistent' : 'crash-consistent',
      });
    }
    replicas.push({
      hostId: replicaHost(i, k),
      relationshipId: vmId(partner, k),
      storageLocation: STORAGE_LOCATION,
      points,
    });
  }
  return { relationships, replicas };
}

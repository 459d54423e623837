/**
 * What `secondsite lab up` builds (DESIGN.md section 3): the management servers, the host agents each
 * one enrols, the fabric each describes (host groups, clouds, VM networks) and the guest VMs running on
 * the primary cloud's hosts. Two topologies: two management servers (one per site, the normal case)
 * and a single management server with a primary and a recovery cloud over two host groups.
 *
 * Guest NICs take loopback addresses (127.1.0.x on the primary network, 127.2.0.x on the recovery one)
 * so the guests' services really listen at them on this machine.
 */

export interface LabHostGroup {
  readonly name: string;
  readonly hostIds: readonly string[];
}

export interface LabCloud {
  readonly name: string;
  readonly hostGroups: readonly string[];
  /** The cloud's one VM network. */
  readonly network: { readonly name: string; readonly cidr: string };
}

export interface LabManagementServer {
  readonly name: string;
  /** Folder name under the lab directory. */
  readonly dirName: string;
  readonly hostGroups: readonly LabHostGroup[];
  readonly clouds: readonly LabCloud[];
}

export interface LabVm {
  readonly vmId: string;
  readonly hostId: string;
  readonly ipv4: string;
  readonly network: string;
  /** The first disk is the boot disk (the guest's record log); others are data disks. */
  readonly disks: ReadonlyArray<{ readonly diskId: string; readonly sizeBytes: number }>;
  /** A data disk the lab's block workload writes, if any. */
  readonly workloadDiskId?: string;
}

export interface LabTopology {
  readonly kind: 'two-servers' | 'single-server';
  readonly managementServers: readonly LabManagementServer[];
  readonly vms: readonly LabVm[];
  /** The names the walkthrough uses (`--primary-cloud`, `--source`...). */
  readonly primary: { readonly cloud: string; readonly network: string };
  readonly recovery: { readonly cloud: string; readonly network: string };
}

const MiB = 1024 * 1024;

/** Boot disks stay small: the guest checks a blank boot disk whole at its first boot. */
const BOOT_DISK_BYTES = 32 * MiB;
const DATA_DISK_BYTES = 256 * MiB;

const PROD = { cloud: 'prod', network: 'net-prod' } as const;
const DR = { cloud: 'dr', network: 'net-dr' } as const;

const prodCloud: LabCloud = {
  name: PROD.cloud,
  hostGroups: ['hg-prod'],
  network: { name: PROD.network, cidr: '127.1.0.0/24' },
};
const drCloud: LabCloud = {
  name: DR.cloud,
  hostGroups: ['hg-dr'],
  network: { name: DR.network, cidr: '127.2.0.0/24' },
};

function vms(webHost: string, dbHost: string): LabVm[] {
  return [
    {
      vmId: 'web',
      hostId: webHost,
      ipv4: '127.1.0.10',
      network: PROD.network,
      disks: [{ diskId: 'web-d0', sizeBytes: BOOT_DISK_BYTES }],
    },
    {
      vmId: 'db',
      hostId: dbHost,
      ipv4: '127.1.0.11',
      network: PROD.network,
      disks: [
        { diskId: 'db-d0', sizeBytes: BOOT_DISK_BYTES },
        { diskId: 'db-d1', sizeBytes: DATA_DISK_BYTES },
      ],
      workloadDiskId: 'db-d1',
    },
  ];
}

/** Two sites: vmm-site-a (hosts host-a1, host-a2; cloud prod) and vmm-site-b (host-b1; cloud dr). */
export const TWO_SERVERS: LabTopology = {
  kind: 'two-servers',
  managementServers: [
    {
      name: 'vmm-site-a',
      dirName: 'manager-a',
      hostGroups: [{ name: 'hg-prod', hostIds: ['host-a1', 'host-a2'] }],
      clouds: [prodCloud],
    },
    {
      name: 'vmm-site-b',
      dirName: 'manager-b',
      hostGroups: [{ name: 'hg-dr', hostIds: ['host-b1'] }],
      clouds: [drCloud],
    },
  ],
  vms: vms('host-a1', 'host-a2'),
  primary: PROD,
  recovery: DR,
};

/** One management server, vmm-single: clouds prod (host group hg-prod, host-a1) and dr (hg-dr, host-b1). */
export const SINGLE_SERVER: LabTopology = {
  kind: 'single-server',
  managementServers: [
    {
      name: 'vmm-single',
      dirName: 'manager',
      hostGroups: [
        { name: 'hg-prod', hostIds: ['host-a1'] },
        { name: 'hg-dr', hostIds: ['host-b1'] },
      ],
      clouds: [prodCloud, drCloud],
    },
  ],
  vms: vms('host-a1', 'host-a1'),
  primary: PROD,
  recovery: DR,
};

/** Every host of the topology with its management server. */
export function labHosts(t: LabTopology): Array<{ hostId: string; managementServer: LabManagementServer }> {
  return t.managementServers.flatMap((m) =>
    m.hostGroups.flatMap((g) => g.hostIds.map((hostId) => ({ hostId, managementServer: m }))),
  );
}

/** The hosts of the recovery cloud (where replicas go). */
export function recoveryHostIds(t: LabTopology): string[] {
  return t.managementServers.flatMap((m) => {
    const cloud = m.clouds.find((c) => c.name === t.recovery.cloud);
    return cloud
      ? m.hostGroups.filter((g) => cloud.hostGroups.includes(g.name)).flatMap((g) => g.hostIds)
      : [];
  });
}

/**
 * `secondsite manager host-group|host move|cloud|vm-network|storage|inventory ...`: the management
 * server's fabric (docs/design/vault.md section 6), through its control socket. The CLI only turns
 * flags into request fields (64GiB -> bytes); the server checks every rule, so its messages are the
 * same from any client.
 */
import { SecondsiteError } from '../domain/errors.js';
import { splitIpRange } from '../domain/fabric/vm-network.rules.js';
import { formatBytes } from '../domain/units.js';
import type {
  CloudView,
  Created,
  HostGroupView,
  StorageLocationView,
  VmNetworkView,
} from '../manager/fabric/fabric-api.schema.js';
import type { InventorySyncResult, InventorySyncStatus } from '../manager/fabric/inventory-sync.js';
import type { Inventory } from '../protocol/vault-api/inventory.schema.js';
import {
  optionalString,
  parseCommandArgs,
  parseIntOption,
  parseSizeOption,
  requireString,
  type Parsed,
} from './args.js';
import type { ManagementVmView } from '../manager/fabric/management-vm.js';
import type { Command } from './command.js';
import { callManager, MANAGER_DATA_DIR_HELP } from './manager-connection.js';
import { table } from './simple-command.js';

const DATA_DIR_HELP = `${MANAGER_DATA_DIR_HELP}\n  --output json     JSON for scripts`;

type Call = <T>(method: string, path: string, body?: unknown) => Promise<T>;

/** A command that calls the running management server and prints text or JSON. */
function fabricCommand(
  path: string[],
  summary: string,
  usage: string,
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>,
  run: (call: Call, p: Parsed) => Promise<{ json: unknown; text: string }>,
): Command {
  const help = `${usage}\n${DATA_DIR_HELP}`;
  return {
    path,
    summary,
    help,
    async run(args, io) {
      const p = parseCommandArgs(args, { ...options, 'data-dir': { type: 'string' } }, help);
      const given = optionalString(p, 'data-dir');
      const call: Call = <T>(method: string, route: string, body?: unknown): Promise<T> =>
        callManager<T>(given, method, route, body);
      const r = await run(call, p);
      io.out(p.json ? JSON.stringify(r.json) : r.text);
      return 0;
    },
  };
}

function oneName(p: Parsed, what: string, usage: string): string {
  const [name, ...more] = p.positionals;
  if (!name)
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `the ${what} is missing\n\n${usage}`);
  if (more.length > 0) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `one ${what}, not '${p.positionals.join(' ')}'\n\n${usage}`,
    );
  }
  return name;
}

const strings = (p: Parsed, name: string): string[] => (p.values[name] as string[] | undefined) ?? [];
const seg = encodeURIComponent;
const dash = (xs: readonly string[]): string => (xs.length ? xs.join(',') : '-');
const bytesOrUnlimited = (b: number | null): string => (b === null ? 'unlimited' : formatBytes(b));
const was = (v: { created: boolean }, kind: string, name: string): string =>
  v.created ? `${kind} ${name} created` : `${kind} ${name} exists with these settings`;

// ---- host groups, host move ----

const hostGroupCreateUsage = `usage: secondsite manager host-group create NAME [--parent PARENT]

Creates a host group (VMM's host group): hosts are moved into it, clouds are made of host groups. A
group nested under --parent belongs to the parent's cloud. Running it again is harmless.`;
const hostGroupCreate = fabricCommand(
  ['host-group', 'create'],
  'create a host group',
  hostGroupCreateUsage,
  { parent: { type: 'string' } },
  async (call, p) => {
    const name = oneName(p, 'host group NAME', hostGroupCreateUsage);
    const v = await call<Created<HostGroupView>>('POST', '/v1/host-groups', {
      name,
      parent: optionalString(p, 'parent') ?? null,
    });
    return { json: v, text: `${was(v, 'host group', name)}${v.parent ? ` under ${v.parent}` : ''}` };
  },
);

const hostGroupList = fabricCommand(
  ['host-group', 'list'],
  'list host groups',
  'usage: secondsite manager host-group list',
  {},
  async (call) => {
    const { hostGroups } = await call<{ hostGroups: HostGroupView[] }>('GET', '/v1/host-groups');
    return {
      json: hostGroups,
      text: hostGroups.length
        ? table([
            ['HOST GROUP', 'PARENT', 'CLOUD', 'HOSTS'],
            ...hostGroups.map((g) => [g.name, g.parent ?? '-', g.cloud ?? '-', dash(g.hosts)]),
          ])
        : "no host group yet; create one with 'secondsite manager host-group create NAME'",
    };
  },
);

const hostGroupDeleteUsage = 'usage: secondsite manager host-group delete NAME';
const hostGroupDelete = fabricCommand(
  ['host-group', 'delete'],
  'delete an empty host group no cloud uses',
  hostGroupDeleteUsage,
  {},
  async (call, p) => {
    const name = oneName(p, 'host group NAME', hostGroupDeleteUsage);
    const r = await call<unknown>('DELETE', `/v1/host-groups/${seg(name)}`);
    return { json: r, text: `host group ${name} deleted` };
  },
);

const hostMoveUsage = `usage: secondsite manager host move HOST --host-group GROUP

Puts an enrolled host (and so its VMs) in a host group, and so in the cloud that covers the group.`;
const hostMove = fabricCommand(
  ['host', 'move'],
  'put a host in a host group',
  hostMoveUsage,
  { 'host-group': { type: 'string' } },
  async (call, p) => {
    const host = oneName(p, 'HOST', hostMoveUsage);
    const r = await call<{ hostId: string; hostGroup: string; cloud: string | null; moved: boolean }>(
      'PUT',
      `/v1/hosts/${seg(host)}/host-group`,
      { hostGroup: requireString(p, 'host-group', hostMoveUsage) },
    );
    return {
      json: r,
      text: `host ${host} ${r.moved ? 'moved to' : 'is already in'} host group ${r.hostGroup} (cloud ${r.cloud ?? 'none'})`,
    };
  },
);

// ---- clouds ----

export function renderCloud(c: CloudView): string {
  return [
    ['cloud', c.name],
    ['host groups', c.hostGroups.join(', ')],
    ['max VMs', c.capacity.vmCount === null ? 'unlimited' : String(c.capacity.vmCount)],
    ['memory', bytesOrUnlimited(c.capacity.memoryBytes)],
    ['storage', bytesOrUnlimited(c.capacity.storageBytes)],
    ['VM networks', c.vmNetworks.join(', ') || '-'],
    ['hosts', c.usage.hosts.join(', ') || '-'],
    ['VMs', String(c.usage.vmCount)],
    ['VM disks', formatBytes(c.usage.storageBytes)],
    ['id', c.cloudId],
  ]
    .map(([k, v]) => `${`${k}:`.padEnd(14)}${v}`)
    .join('\n');
}

const cloudCreateUsage = `usage: secondsite manager cloud create NAME --host-group GROUP [--host-group GROUP2 ...]
                                      [--max-vms N] [--memory SIZE] [--storage SIZE]

Creates a cloud over host groups (with the groups nested in them): the unit a cloud pairing protects.
A host group belongs to one cloud at most. Capacity not given is unlimited. Running it again with the
same settings is harmless; other settings for an existing name are refused.

  --host-group GROUP   a host group of the cloud (repeat for more)
  --max-vms N          how many VMs the cloud offers
  --memory SIZE        memory the cloud offers, e.g. 64GiB
  --storage SIZE       storage the cloud offers, e.g. 2TiB

example:
  secondsite manager cloud create gold --host-group east --max-vms 50 --memory 256GiB --storage 4TiB`;
const cloudCreate = fabricCommand(
  ['cloud', 'create'],
  'create a cloud over host groups',
  cloudCreateUsage,
  {
    'host-group': { type: 'string', multiple: true },
    'max-vms': { type: 'string' },
    memory: { type: 'string' },
    storage: { type: 'string' },
  },
  async (call, p) => {
    const name = oneName(p, 'cloud NAME', cloudCreateUsage);
    const hostGroups = strings(p, 'host-group');
    if (hostGroups.length === 0) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `--host-group is required.\n\n${cloudCreateUsage}`,
      );
    }
    const maxVms = optionalString(p, 'max-vms');
    const memory = optionalString(p, 'memory');
    const storage = optionalString(p, 'storage');
    const v = await call<Created<CloudView>>('POST', '/v1/clouds', {
      name,
      hostGroups,
      capacity: {
        vmCount: maxVms === undefined ? null : parseIntOption(maxVms, 'max-vms', 0, 1_000_000, 0),
        memoryBytes: memory === undefined ? null : parseSizeOption(memory, 'memory'),
        storageBytes: storage === undefined ? null : parseSizeOption(storage, 'storage'),
      },
    });
    return { json: v, text: `${was(v, 'cloud', name)}\n${renderCloud(v)}` };
  },
);

const cloudList = fabricCommand(
  ['cloud', 'list'],
  'list clouds',
  'usage: secondsite manager cloud list',
  {},
  async (call) => {
    const { clouds } = await call<{ clouds: CloudView[] }>('GET', '/v1/clouds');
    return {
      json: clouds,
      text: clouds.length
        ? table([
            ['CLOUD', 'HOST GROUPS', 'MAX VMS', 'MEMORY', 'STORAGE', 'HOSTS', 'VMS', 'VM NETWORKS'],
            ...clouds.map((c) => [
              c.name,
              dash(c.hostGroups),
              c.capacity.vmCount === null ? 'unlimited' : String(c.capacity.vmCount),
              bytesOrUnlimited(c.capacity.memoryBytes),
              bytesOrUnlimited(c.capacity.storageBytes),
              String(c.usage.hosts.length),
              String(c.usage.vmCount),
              dash(c.vmNetworks),
            ]),
          ])
        : "no cloud yet; create one with 'secondsite manager cloud create NAME --host-group GROUP'",
    };
  },
);

const cloudShowUsage = 'usage: secondsite manager cloud show NAME';
const cloudShow = fabricCommand(
  ['cloud', 'show'],
  'one cloud, its capacity and what it holds',
  cloudShowUsage,
  {},
  async (call, p) => {
    const v = await call<CloudView>('GET', `/v1/clouds/${seg(oneName(p, 'cloud NAME', cloudShowUsage))}`);
    return { json: v, text: renderCloud(v) };
  },
);

const cloudDeleteUsage = `usage: secondsite manager cloud delete NAME

Deletes the cloud; its host groups and hosts stay, its VM networks are no longer available in it.`;
const cloudDelete = fabricCommand(
  ['cloud', 'delete'],
  'delete a cloud',
  cloudDeleteUsage,
  {},
  async (call, p) => {
    const name = oneName(p, 'cloud NAME', cloudDeleteUsage);
    const r = await call<unknown>('DELETE', `/v1/clouds/${seg(name)}`);
    return { json: r, text: `cloud ${name} deleted` };
  },
);

// ---- VM networks ----

const poolsText = (s: VmNetworkView['subnets'][number]): string =>
  dash(s.ipPools.map((x) => `${x.rangeStart}-${x.rangeEnd}`));

const vmNetworkCreateUsage = `usage: secondsite manager vm-network create NAME --cloud CLOUD [--cloud CLOUD2 ...]
                                           --subnet CIDR [--gateway IP] [--ip-pool START-END ...]

Creates a VM network available to the VMs of the clouds given. A VM's NIC is on it when the host
reports the NIC's network by this NAME. The gateway and the IP pools lie inside the subnet, the pools
do not overlap and hold no gateway. Running it again with the same settings is harmless.

  --cloud CLOUD          a cloud whose VMs may use the network (repeat for more)
  --subnet CIDR          the subnet, e.g. 10.1.0.0/24
  --gateway IP           the subnet's gateway, e.g. 10.1.0.1
  --ip-pool START-END    addresses given to VMs, e.g. 10.1.0.100-10.1.0.199 (repeat for more)

example:
  secondsite manager vm-network create prod --cloud gold --subnet 10.1.0.0/24 --gateway 10.1.0.1 \\
    --ip-pool 10.1.0.100-10.1.0.199`;
const vmNetworkCreate = fabricCommand(
  ['vm-network', 'create'],
  'create a VM network with a subnet and IP pools',
  vmNetworkCreateUsage,
  {
    cloud: { type: 'string', multiple: true },
    subnet: { type: 'string' },
    gateway: { type: 'string' },
    'ip-pool': { type: 'string', multiple: true },
  },
  async (call, p) => {
    const name = oneName(p, 'VM network NAME', vmNetworkCreateUsage);
    const clouds = strings(p, 'cloud');
    if (clouds.length === 0) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `--cloud is required.\n\n${vmNetworkCreateUsage}`,
      );
    }
    const ipPools = strings(p, 'ip-pool').map((text) => {
      const range = splitIpRange(text);
      if (!range) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `--ip-pool '${text}' is not START-END, e.g. 10.1.0.100-10.1.0.199`,
        );
      }
      return range;
    });
    const v = await call<Created<VmNetworkView>>('POST', '/v1/vm-networks', {
      name,
      clouds,
      subnets: [
        {
          cidr: requireString(p, 'subnet', vmNetworkCreateUsage),
          gateway: optionalString(p, 'gateway') ?? null,
          ipPools,
        },
      ],
    });
    return { json: v, text: `${was(v, 'VM network', name)}\n${renderVmNetworks([v])}` };
  },
);

function renderVmNetworks(networks: readonly VmNetworkView[]): string {
  return table([
    ['VM NETWORK', 'CLOUDS', 'SUBNET', 'GATEWAY', 'IP POOLS'],
    ...networks.flatMap((n) =>
      n.subnets.map((s, i) => [
        i === 0 ? n.name : '',
        i === 0 ? dash(n.clouds) : '',
        s.cidr,
        s.gateway ?? '-',
        poolsText(s),
      ]),
    ),
  ]);
}

const vmNetworkList = fabricCommand(
  ['vm-network', 'list'],
  'list VM networks',
  'usage: secondsite manager vm-network list',
  {},
  async (call) => {
    const { vmNetworks } = await call<{ vmNetworks: VmNetworkView[] }>('GET', '/v1/vm-networks');
    return {
      json: vmNetworks,
      text: vmNetworks.length
        ? renderVmNetworks(vmNetworks)
        : "no VM network yet; create one with 'secondsite manager vm-network create NAME --cloud CLOUD --subnet CIDR'",
    };
  },
);

const vmNetworkShowUsage = 'usage: secondsite manager vm-network show NAME';
const vmNetworkShow = fabricCommand(
  ['vm-network', 'show'],
  'one VM network',
  vmNetworkShowUsage,
  {},
  async (call, p) => {
    const v = await call<VmNetworkView>(
      'GET',
      `/v1/vm-networks/${seg(oneName(p, 'VM network NAME', vmNetworkShowUsage))}`,
    );
    return { json: v, text: renderVmNetworks([v]) };
  },
);

const vmNetworkDeleteUsage = `usage: secondsite manager vm-network delete NAME

Deletes a VM network no VM's NIC is on.`;
const vmNetworkDelete = fabricCommand(
  ['vm-network', 'delete'],
  'delete a VM network',
  vmNetworkDeleteUsage,
  {},
  async (call, p) => {
    const name = oneName(p, 'VM network NAME', vmNetworkDeleteUsage);
    const r = await call<unknown>('DELETE', `/v1/vm-networks/${seg(name)}`);
    return { json: r, text: `VM network ${name} deleted` };
  },
);

// ---- storage classifications ----

const storageList = fabricCommand(
  ['storage', 'list'],
  "the hosts' storage locations and their classifications",
  'usage: secondsite manager storage list',
  {},
  async (call) => {
    const { storageLocations } = await call<{ storageLocations: StorageLocationView[] }>(
      'GET',
      '/v1/storage-locations',
    );
    return {
      json: storageLocations,
      text: storageLocations.length
        ? table([
            ['HOST', 'LOCATION', 'CLASSIFICATION', 'CAPACITY', 'FREE'],
            ...storageLocations.map((s) => [
              s.hostId,
              s.location,
              s.classification ?? '-',
              s.capacityBytes === null ? 'not reported' : formatBytes(s.capacityBytes),
              s.freeBytes === null ? '-' : formatBytes(s.freeBytes),
            ]),
          ])
        : 'no storage location reported yet (hosts report theirs once enrolled and read)',
    };
  },
);

const classifyUsage = `usage: secondsite manager storage classify --host HOST --location LOCATION --classification NAME

Gives a host's replica storage location a storage classification (e.g. Gold); storage mappings in the
vault map classifications of one site to the other's.`;
const storageClassify = fabricCommand(
  ['storage', 'classify'],
  'classify a storage location of a host',
  classifyUsage,
  { host: { type: 'string' }, location: { type: 'string' }, classification: { type: 'string' } },
  async (call, p) => {
    const v = await call<StorageLocationView>('PUT', '/v1/storage-locations/classification', {
      hostId: requireString(p, 'host', classifyUsage),
      location: requireString(p, 'location', classifyUsage),
      classification: requireString(p, 'classification', classifyUsage),
    });
    return {
      json: v,
      text: `storage location ${v.location} of host ${v.hostId} is ${v.classification ?? '-'}`,
    };
  },
);

const unclassifyUsage = 'usage: secondsite manager storage unclassify --host HOST --location LOCATION';
const storageUnclassify = fabricCommand(
  ['storage', 'unclassify'],
  "remove a storage location's classification",
  unclassifyUsage,
  { host: { type: 'string' }, location: { type: 'string' } },
  async (call, p) => {
    const v = await call<StorageLocationView>('PUT', '/v1/storage-locations/classification', {
      hostId: requireString(p, 'host', unclassifyUsage),
      location: requireString(p, 'location', unclassifyUsage),
      classification: null,
    });
    return { json: v, text: `storage location ${v.location} of host ${v.hostId} is unclassified` };
  },
);

// ---- inventory ----

export function renderInventory(inv: Inventory): string {
  const connected = inv.hosts.filter((h) => h.connectionState === 'connected').length;
  const cloudName = new Map(inv.clouds.map((c) => [c.cloudId, c.name]));
  const networkName = new Map(inv.vmNetworks.map((n) => [n.vmNetworkId, n.name]));
  const head =
    `inventory version ${inv.inventoryVersion}: ${inv.hostGroups.length} host groups, ` +
    `${inv.hosts.length} hosts (${connected} connected), ${inv.clouds.length} clouds, ` +
    `${inv.vmNetworks.length} VM networks, ${inv.vms.length} VMs`;
  if (inv.vms.length === 0) return head;
  return `${head}\n\n${table([
    ['VM', 'HOST', 'CLOUD', 'POWER', 'DISKS', 'NICS'],
    ...inv.vms.map((vm) => [
      vm.vmId,
      vm.hostId,
      vm.cloudId === null ? '-' : (cloudName.get(vm.cloudId) ?? vm.cloudId),
      vm.powerState,
      formatBytes(vm.disks.reduce((s, d) => s + d.sizeBytes, 0)),
      dash(
        vm.nics.map(
          (n) =>
            `${n.nicId}:${n.vmNetworkId === null ? '(no VM network)' : (networkName.get(n.vmNetworkId) ?? n.vmNetworkId)}`,
        ),
      ),
    ]),
  ])}`;
}

const inventoryShow = fabricCommand(
  ['inventory'],
  'the inventory this management server sends to the vault',
  `usage: secondsite manager inventory [--output json]

The document the provider sends to the vault: host groups, hosts, clouds, VM networks and VMs with
their cloud. With --output json, exactly as the vault gets it.`,
  {},
  async (call) => {
    const inv = await call<Inventory>('GET', '/v1/inventory');
    return { json: inv, text: renderInventory(inv) };
  },
);

const inventorySync = fabricCommand(
  ['inventory', 'sync'],
  'send the inventory to the vault now',
  `usage: secondsite manager inventory sync

Sends the inventory to the vault now (it is also sent after a heartbeat when the vault holds an older
version).`,
  {},
  async (call) => {
    const r = await call<InventorySyncResult>('POST', '/v1/inventory/sync');
    return {
      json: r,
      text: r.applied
        ? `the vault now holds inventory version ${r.inventoryVersion}`
        : `the vault already held inventory version ${r.inventoryVersion}`,
    };
  },
);

const inventoryStatus = fabricCommand(
  ['inventory', 'status'],
  'whether the vault holds the current inventory',
  `usage: secondsite manager inventory status

The management server's inventory version, the version the vault last said it holds, and the last
send's error, if any.`,
  {},
  async (call) => {
    const s = await call<InventorySyncStatus>('GET', '/v1/inventory/sync');
    const vault =
      s.vaultInventoryVersion === null
        ? 'the vault has not answered yet'
        : s.inSync
          ? 'the vault holds it'
          : `the vault holds version ${s.vaultInventoryVersion}`;
    return {
      json: s,
      text: `inventory version ${s.inventoryVersion}: ${vault}${s.lastError ? `; the last send failed: ${s.lastError}` : ''}`,
    };
  },
);

const managementVmText = (v: ManagementVmView): string =>
  v.managementVm
    ? `this management server runs in VM ${v.managementVm.vmId} on host ${v.managementVm.hostId}: the vault will not protect it nor pair a cloud that holds it`
    : 'no management server VM is set (the management server does not run on one of its hosts)';

const managementVmSetUsage = `usage: secondsite manager management-vm set HOST/VM

Names the VM that runs this management server, when it runs on one of its own hosts (the single
management server topology). The vault then refuses to pair a cloud that holds it and to protect it:
protect it with host replication directly ('secondsite host replication enable' on its host), as
the complete-outage runbook expects.`;
const managementVmSet = fabricCommand(
  ['management-vm', 'set'],
  'name the VM that runs this management server',
  managementVmSetUsage,
  {},
  async (call, p) => {
    const ref = p.positionals[0] ?? '';
    const slash = ref.indexOf('/');
    if (slash < 1)
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `give HOST/VM\n\n${managementVmSetUsage}`);
    const v = await call<ManagementVmView>('PUT', '/v1/management-vm', {
      hostId: ref.slice(0, slash),
      vmId: ref.slice(slash + 1),
    });
    return { json: v, text: managementVmText(v) };
  },
);
const managementVmShow = fabricCommand(
  ['management-vm', 'show'],
  'show the VM that runs this management server',
  'usage: secondsite manager management-vm show',
  {},
  async (call) => {
    const v = await call<ManagementVmView>('GET', '/v1/management-vm');
    return { json: v, text: managementVmText(v) };
  },
);
const managementVmClear = fabricCommand(
  ['management-vm', 'clear'],
  'forget the management server VM setting',
  'usage: secondsite manager management-vm clear',
  {},
  async (call) => {
    const v = await call<ManagementVmView>('DELETE', '/v1/management-vm');
    return { json: v, text: managementVmText(v) };
  },
);

export const managerFabricCommands: readonly Command[] = [
  managementVmSet,
  managementVmShow,
  managementVmClear,
  hostGroupCreate,
  hostGroupList,
  hostGroupDelete,
  hostMove,
  cloudCreate,
  cloudList,
  cloudShow,
  cloudDelete,
  vmNetworkCreate,
  vmNetworkList,
  vmNetworkShow,
  vmNetworkDelete,
  storageList,
  storageClassify,
  storageUnclassify,
  inventoryShow,
  inventorySync,
  inventoryStatus,
];

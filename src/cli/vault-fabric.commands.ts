/**
 * `secondsite vault cloud list|show`, `vault host list`, `vault vm list`, `vault network list`,
 * `vault storage-classification list`: the fabric the management servers' providers report
 * (docs/design/vault.md section 6). Clouds and networks are named `SERVER/NAME` or a unique NAME
 * (vault-fabric-refs.ts). vault.commands.ts passes its `clientCommand` helper in.
 */
import { SecondsiteError } from '../domain/errors.js';
import type { VaultClient } from '../manager/provider/vault-client.js';
import type {
  CloudView,
  HostView,
  StorageClassificationView,
  VmNetworkView,
  VmView,
} from '../protocol/vault-api/fabric.schema.js';
import { optionalString, type Parsed } from './args.js';
import type { Command } from './command.js';
import { table } from './simple-command.js';
import { allPages, resolveCloud } from './vault-fabric-refs.js';
import type { ClientCommandFactory } from './vault-policy.commands.js';

const GiB = 2 ** 30;
const gib = (bytes: number | null): string =>
  bytes === null ? 'unlimited' : `${(bytes / GiB).toFixed(1)} GiB`;
const q = encodeURIComponent;

/** `?managementServer=&cloud=` from --management-server and --cloud (a cloud ref resolved to its ids). */
async function scopeQuery(client: VaultClient, p: Parsed): Promise<string> {
  const parts: string[] = [];
  const cloudRef = optionalString(p, 'cloud');
  const server = optionalString(p, 'management-server');
  if (cloudRef !== undefined) {
    const cloud = await resolveCloud(
      client,
      server !== undefined && !cloudRef.includes('/') ? `${server}/${cloudRef}` : cloudRef,
    );
    parts.push(`managementServer=${q(cloud.managementServerId)}`, `cloud=${q(cloud.cloudId)}`);
  } else if (server !== undefined) parts.push(`managementServer=${q(server)}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

export function pairingText(c: CloudView): string {
  if (!c.pairing) return '-';
  const arrow = c.pairing.role === 'primary' ? '->' : '<-';
  return `${arrow} ${c.pairing.peerManagementServerName}/${c.pairing.peerCloudName} (${c.pairing.policyName})`;
}

export function renderCloud(c: CloudView): string {
  return [
    ['cloud', `${c.managementServerName}/${c.name}`],
    ['id', c.cloudId],
    ['management server', `${c.managementServerName} (${c.managementServerId})`],
    ['state', c.missingSince ? `missing since ${c.missingSince}` : 'present'],
    ['host groups', c.hostGroupIds.join(', ') || '-'],
    ['hosts', c.hostIds.join(', ') || '-'],
    ['VMs', String(c.vmCount)],
    [
      'capacity',
      `${c.capacity.vmCount ?? 'unlimited'} VMs, memory ${gib(c.capacity.memoryBytes)}, storage ${gib(c.capacity.storageBytes)}`,
    ],
    [
      'pairing',
      c.pairing
        ? `${c.pairing.role} in ${c.pairing.pairingId}, ${pairingText(c)}`
        : "not paired ('secondsite vault pairing create')",
    ],
  ]
    .map(([k, v]) => `${`${k}:`.padEnd(19)}${v}`)
    .join('\n');
}

function oneRef(p: Parsed, usage: string, what: string): string {
  const ref = p.positionals[0];
  if (!ref || p.positionals.length > 1)
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `give one ${what}\n\n${usage}`);
  return ref;
}

const SCOPE_OPTIONS = {
  'management-server': { type: 'string' },
  cloud: { type: 'string' },
} as const;

const SCOPE_HELP = `  --management-server S   only this management server (name or id)
  --cloud C               only this cloud: SERVER/CLOUD or a cloud name only one server has`;

export function fabricCommands(clientCommand: ClientCommandFactory): Command[] {
  const cloudList = clientCommand(
    ['cloud', 'list'],
    'clouds of every management server, with hosts, VMs and pairing',
    `usage: secondsite vault cloud list [--management-server S]

  --management-server S   only this management server (name or id)`,
    { 'management-server': { type: 'string' } },
    async (client, p) => {
      const server = optionalString(p, 'management-server');
      const clouds = await allPages<CloudView>(
        client,
        `/v1/clouds${server !== undefined ? `?managementServer=${q(server)}` : ''}`,
        'clouds',
      );
      return {
        json: clouds,
        text: clouds.length
          ? table([
              ['CLOUD', 'ID', 'STATE', 'HOSTS', 'VMS', 'PAIRING'],
              ...clouds.map((c) => [
                `${c.managementServerName}/${c.name}`,
                c.cloudId,
                c.state,
                String(c.hostIds.length),
                String(c.vmCount),
                pairingText(c),
              ]),
            ])
          : 'no clouds: a management server reports its clouds once it is registered and has some',
      };
    },
  );

  const showUsage = 'usage: secondsite vault cloud show SERVER/CLOUD|CLOUD';
  const cloudShow = clientCommand(['cloud', 'show'], 'one cloud', showUsage, {}, async (client, p) => {
    const c = await resolveCloud(client, oneRef(p, showUsage, 'cloud'));
    return { json: c, text: renderCloud(c) };
  });

  const hostList = clientCommand(
    ['host', 'list'],
    'hosts of the management servers, with their clouds and storage',
    `usage: secondsite vault host list [--management-server S] [--cloud C]\n\n${SCOPE_HELP}`,
    SCOPE_OPTIONS,
    async (client, p) => {
      const hosts = await allPages<HostView>(client, `/v1/hosts${await scopeQuery(client, p)}`, 'hosts');
      return {
        json: hosts,
        text: hosts.length
          ? table([
              [
                'HOST',
                'MANAGEMENT SERVER',
                'STATE',
                'HOST GROUP',
                'CLOUDS',
                'STORAGE (CLASSIFICATION)',
                'CERT ENDS',
              ],
              ...hosts.map((h) => [
                h.hostId,
                h.managementServerName,
                h.connectionState,
                h.hostGroupName ?? '-',
                h.cloudIds.join(',') || '-',
                h.storageLocations.map((s) => `${s.name}(${s.storageClassification || '-'})`).join(' ') ||
                  '-',
                h.certNotAfter?.slice(0, 10) ?? '-',
              ]),
            ])
          : 'no hosts',
      };
    },
  );

  const vmList = clientCommand(
    ['vm', 'list'],
    'VMs of the management servers, with their placement',
    `usage: secondsite vault vm list [--management-server S] [--cloud C]\n\n${SCOPE_HELP}`,
    SCOPE_OPTIONS,
    async (client, p) => {
      const vms = await allPages<VmView>(client, `/v1/vms${await scopeQuery(client, p)}`, 'vms');
      return {
        json: vms,
        text: vms.length
          ? table([
              ['VM', 'ID', 'MANAGEMENT SERVER', 'CLOUD', 'HOST', 'POWER', 'DISKS', 'NICS'],
              ...vms.map((v) => [
                v.name,
                v.vmId,
                v.managementServerName,
                v.cloudName ?? '-',
                v.hostId,
                v.powerState,
                String(v.disks.length),
                v.nics.map((n) => n.ipAddress ?? n.nicId).join(',') || '-',
              ]),
            ])
          : 'no VMs',
      };
    },
  );

  const networkList = clientCommand(
    ['network', 'list'],
    'VM networks of the management servers, with subnets and mappings',
    `usage: secondsite vault network list [--management-server S] [--cloud C]\n\n${SCOPE_HELP}`,
    SCOPE_OPTIONS,
    async (client, p) => {
      const nets = await allPages<VmNetworkView>(
        client,
        `/v1/vm-networks${await scopeQuery(client, p)}`,
        'vmNetworks',
      );
      return {
        json: nets,
        text: nets.length
          ? table([
              ['VM NETWORK', 'ID', 'STATE', 'CLOUDS', 'SUBNETS', 'MAPPED TO'],
              ...nets.map((n) => [
                `${n.managementServerName}/${n.name}`,
                n.vmNetworkId,
                n.state,
                n.cloudIds.join(',') || '-',
                n.subnets.map((s) => s.cidr).join(',') || '-',
                n.mappedTo ? `${n.mappedTo.managementServerId}/${n.mappedTo.vmNetworkId}` : '-',
              ]),
            ])
          : 'no VM networks',
      };
    },
  );

  const classificationList = clientCommand(
    ['storage-classification', 'list'],
    'storage classifications of the management servers, with capacity and mappings',
    'usage: secondsite vault storage-classification list [--management-server S]',
    { 'management-server': { type: 'string' } },
    async (client, p) => {
      const server = optionalString(p, 'management-server');
      const list = await allPages<StorageClassificationView>(
        client,
        `/v1/storage-classifications${server !== undefined ? `?managementServer=${q(server)}` : ''}`,
        'storageClassifications',
      );
      return {
        json: list,
        text: list.length
          ? table([
              ['CLASSIFICATION', 'STATE', 'LOCATIONS', 'CAPACITY', 'FREE', 'MAPPED TO'],
              ...list.map((c) => [
                `${c.managementServerName}/${c.name}`,
                c.state,
                String(c.locationCount),
                gib(c.capacityBytes),
                gib(c.freeBytes),
                c.mappedTo ? `${c.mappedTo.managementServerId}/${c.mappedTo.classification}` : '-',
              ]),
            ])
          : 'no storage classifications: hosts report them with their storage locations',
      };
    },
  );

  return [cloudList, cloudShow, hostList, vmList, networkList, classificationList];
}

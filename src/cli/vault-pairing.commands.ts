/**
 * `secondsite vault pairing create|list|show|delete`, `vault network-mapping create|list|delete`,
 * `vault storage-mapping create|list|delete` (docs/design/vault.md section 6). Clouds, networks and
 * classifications are typed as names (vault-fabric-refs.ts); the vault checks every rule, so the
 * CLI's refusals are the API's. vault.commands.ts passes its `clientCommand` helper in.
 */
import { SecondsiteError } from '../domain/errors.js';
import type { VaultClient } from '../manager/provider/vault-client.js';
import type { NetworkMappingView, StorageMappingView } from '../protocol/vault-api/mappings.schema.js';
import type { PairingView } from '../protocol/vault-api/pairings.schema.js';
import { requireString, type Parsed } from './args.js';
import type { Command } from './command.js';
import { table } from './simple-command.js';
import { allPages, resolveClassification, resolveCloud, resolveNetwork } from './vault-fabric-refs.js';
import type { ClientCommandFactory } from './vault-policy.commands.js';

const q = encodeURIComponent;

function oneArg(p: Parsed, usage: string, what: string): string {
  const v = p.positionals[0];
  if (!v || p.positionals.length > 1)
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `give one ${what}\n\n${usage}`);
  return v;
}

const end = (e: { managementServerName: string; state: string }, name: string): string =>
  `${e.managementServerName}/${name}${e.state === 'missing' ? ' (missing)' : ''}`;

export function renderPairing(p: PairingView): string {
  return [
    ['pairing', p.pairingId],
    ['primary cloud', `${end(p.primary, p.primary.cloudName)} (${p.primary.cloudId})`],
    ['recovery cloud', `${end(p.recovery, p.recovery.cloudName)} (${p.recovery.cloudId})`],
    ['policy', p.policyName],
    ['created', p.createdAt],
  ]
    .map(([k, v]) => `${`${k}:`.padEnd(16)}${v}`)
    .join('\n');
}

async function pairingIdOf(client: VaultClient, ref: string): Promise<string> {
  if (ref.startsWith('pair_')) return ref;
  const cloud = await resolveCloud(client, ref);
  if (!cloud.pairing) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_NOT_FOUND',
      `cloud ${cloud.managementServerName}/${cloud.name} is not paired; see 'secondsite vault pairing list'`,
    );
  }
  return cloud.pairing.pairingId;
}

export function pairingCommands(clientCommand: ClientCommandFactory): Command[] {
  const createUsage = `usage: secondsite vault pairing create --primary-cloud C --recovery-cloud C --policy P

Pairs a primary cloud (whose VMs you will protect) with a recovery cloud (where they fail over to)
under a replication policy. A cloud is in at most one pairing, as primary or recovery; both clouds
may be on one management server, but a cloud is not paired with itself. Running the same command
again is harmless. Needs the Contributor or Owner role.

  --primary-cloud C     SERVER/CLOUD, or a cloud name only one management server has
  --recovery-cloud C    the same for the recovery cloud
  --policy P            a replication policy's name ('secondsite vault policy list')

example:
  secondsite vault pairing create --primary-cloud vmm-east/prod --recovery-cloud vmm-west/dr --policy gold`;
  const create = clientCommand(
    ['pairing', 'create'],
    'pair a primary cloud with a recovery cloud under a policy',
    createUsage,
    { 'primary-cloud': { type: 'string' }, 'recovery-cloud': { type: 'string' }, policy: { type: 'string' } },
    async (client, p) => {
      const primary = await resolveCloud(client, requireString(p, 'primary-cloud', createUsage));
      const recovery = await resolveCloud(client, requireString(p, 'recovery-cloud', createUsage));
      const v = await client.post<PairingView>('/v1/cloud-pairings', {
        primaryManagementServerId: primary.managementServerId,
        primaryCloudId: primary.cloudId,
        recoveryManagementServerId: recovery.managementServerId,
        recoveryCloudId: recovery.cloudId,
        policy: requireString(p, 'policy', createUsage),
      });
      return { json: v, text: renderPairing(v) };
    },
  );

  const list = clientCommand(
    ['pairing', 'list'],
    'list cloud pairings',
    'usage: secondsite vault pairing list',
    {},
    async (client) => {
      const pairings = await allPages<PairingView>(client, '/v1/cloud-pairings', 'pairings');
      return {
        json: pairings,
        text: pairings.length
          ? table([
              ['PAIRING', 'PRIMARY CLOUD', 'RECOVERY CLOUD', 'POLICY'],
              ...pairings.map((x) => [
                x.pairingId,
                end(x.primary, x.primary.cloudName),
                end(x.recovery, x.recovery.cloudName),
                x.policyName,
              ]),
            ])
          : "no cloud pairing yet; create one with 'secondsite vault pairing create'",
      };
    },
  );

  const showUsage = 'usage: secondsite vault pairing show ID|CLOUD   (CLOUD: either cloud of the pairing)';
  const show = clientCommand(['pairing', 'show'], 'one cloud pairing', showUsage, {}, async (client, p) => {
    const v = await client.get<PairingView>(
      `/v1/cloud-pairings/${q(await pairingIdOf(client, oneArg(p, showUsage, 'pairing')))}`,
    );
    return { json: v, text: renderPairing(v) };
  });

  const deleteUsage = `usage: secondsite vault pairing delete ID|CLOUD   (CLOUD: either cloud of the pairing)

Refused while the pairing protects replicated items (disable their replication first).`;
  const remove = clientCommand(
    ['pairing', 'delete'],
    'delete a cloud pairing',
    deleteUsage,
    {},
    async (client, p) => {
      const id = await pairingIdOf(client, oneArg(p, deleteUsage, 'pairing'));
      const r = await client.delete<{ pairingId: string; deleted: boolean }>(`/v1/cloud-pairings/${q(id)}`);
      return { json: r, text: `cloud pairing ${id} deleted` };
    },
  );

  return [create, list, show, remove];
}

export function mappingCommands(clientCommand: ClientCommandFactory): Command[] {
  const netCreateUsage = `usage: secondsite vault network-mapping create --source N --target N

Maps a VM network of a paired primary cloud to a VM network of that pairing's recovery cloud: a
failed-over VM's NIC joins the target network. One mapping per source network. Pair the clouds
first ('secondsite vault pairing create'). Needs the Contributor or Owner role.

  --source N    SERVER/NETWORK, or a VM network name only one management server has
  --target N    the same for the recovery cloud's network`;
  const netCreate = clientCommand(
    ['network-mapping', 'create'],
    'map a VM network of a primary cloud to one of its recovery cloud',
    netCreateUsage,
    { source: { type: 'string' }, target: { type: 'string' } },
    async (client, p) => {
      const source = await resolveNetwork(client, requireString(p, 'source', netCreateUsage));
      const target = await resolveNetwork(client, requireString(p, 'target', netCreateUsage));
      const m = await client.post<NetworkMappingView>('/v1/network-mappings', {
        sourceManagementServerId: source.managementServerId,
        sourceVmNetworkId: source.vmNetworkId,
        targetManagementServerId: target.managementServerId,
        targetVmNetworkId: target.vmNetworkId,
      });
      return {
        json: m,
        text: `network mapping ${m.mappingId}: ${end(m.source, m.source.vmNetworkName)} -> ${end(m.target, m.target.vmNetworkName)}`,
      };
    },
  );
  const netList = clientCommand(
    ['network-mapping', 'list'],
    'list network mappings',
    'usage: secondsite vault network-mapping list',
    {},
    async (client) => {
      const all = await allPages<NetworkMappingView>(client, '/v1/network-mappings', 'networkMappings');
      return {
        json: all,
        text: all.length
          ? table([
              ['MAPPING', 'SOURCE NETWORK', 'TARGET NETWORK'],
              ...all.map((m) => [
                m.mappingId,
                end(m.source, m.source.vmNetworkName),
                end(m.target, m.target.vmNetworkName),
              ]),
            ])
          : "no network mapping yet; create one with 'secondsite vault network-mapping create'",
      };
    },
  );
  const netDeleteUsage = 'usage: secondsite vault network-mapping delete ID|SOURCE-NETWORK';
  const netDelete = clientCommand(
    ['network-mapping', 'delete'],
    'delete a network mapping',
    netDeleteUsage,
    {},
    async (client, p) => {
      const ref = oneArg(p, netDeleteUsage, 'mapping');
      let id = ref;
      if (!ref.startsWith('nmap_')) {
        const n = await resolveNetwork(client, ref);
        if (!n.mappedTo)
          throw new SecondsiteError(
            'SECONDSITE_ERR_NOT_FOUND',
            `VM network ${n.managementServerName}/${n.name} is not mapped`,
          );
        id = n.mappedTo.mappingId;
      }
      const r = await client.delete<{ mappingId: string }>(`/v1/network-mappings/${q(id)}`);
      return { json: r, text: `network mapping ${id} deleted` };
    },
  );

  const stCreateUsage = `usage: secondsite vault storage-mapping create --source SERVER/CLASSIFICATION --target SERVER/CLASSIFICATION

Maps a storage classification of the primary management server to one of the recovery management
server: replicas of disks on the source classification go to storage locations of the target
classification. One mapping per source. Needs the Contributor or Owner role.

  --source C    SERVER/CLASSIFICATION, or a classification only one management server has
  --target C    the same on the recovery side`;
  const stCreate = clientCommand(
    ['storage-mapping', 'create'],
    'map a storage classification to one on the recovery side',
    stCreateUsage,
    { source: { type: 'string' }, target: { type: 'string' } },
    async (client, p) => {
      const source = await resolveClassification(client, requireString(p, 'source', stCreateUsage));
      const target = await resolveClassification(client, requireString(p, 'target', stCreateUsage));
      const m = await client.post<StorageMappingView>('/v1/storage-mappings', {
        sourceManagementServerId: source.managementServerId,
        sourceClassification: source.name,
        targetManagementServerId: target.managementServerId,
        targetClassification: target.name,
      });
      return {
        json: m,
        text: `storage mapping ${m.mappingId}: ${end(m.source, m.source.classification)} -> ${end(m.target, m.target.classification)}`,
      };
    },
  );
  const stList = clientCommand(
    ['storage-mapping', 'list'],
    'list storage mappings',
    'usage: secondsite vault storage-mapping list',
    {},
    async (client) => {
      const all = await allPages<StorageMappingView>(client, '/v1/storage-mappings', 'storageMappings');
      return {
        json: all,
        text: all.length
          ? table([
              ['MAPPING', 'SOURCE CLASSIFICATION', 'TARGET CLASSIFICATION'],
              ...all.map((m) => [
                m.mappingId,
                end(m.source, m.source.classification),
                end(m.target, m.target.classification),
              ]),
            ])
          : "no storage mapping yet; create one with 'secondsite vault storage-mapping create'",
      };
    },
  );
  const stDeleteUsage = 'usage: secondsite vault storage-mapping delete ID|SOURCE-CLASSIFICATION';
  const stDelete = clientCommand(
    ['storage-mapping', 'delete'],
    'delete a storage mapping',
    stDeleteUsage,
    {},
    async (client, p) => {
      const ref = oneArg(p, stDeleteUsage, 'mapping');
      let id = ref;
      if (!ref.startsWith('smap_')) {
        const c = await resolveClassification(client, ref);
        if (!c.mappedTo)
          throw new SecondsiteError(
            'SECONDSITE_ERR_NOT_FOUND',
            `storage classification ${c.managementServerName}/${c.name} is not mapped`,
          );
        id = c.mappedTo.mappingId;
      }
      const r = await client.delete<{ mappingId: string }>(`/v1/storage-mappings/${q(id)}`);
      return { json: r, text: `storage mapping ${id} deleted` };
    },
  );
  return [netCreate, netList, netDelete, stCreate, stList, stDelete];
}

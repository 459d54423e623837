/**
 * `secondsite vault item ...`: replicated items (docs/design/protection.md). `enable` protects VMs of
 * a paired primary cloud (or the whole cloud) and can wait for the enable jobs; `list` and `show` give
 * protection state, health, RPO and recovery points; `disable` stops replication of an item (keeping
 * or deleting its replica) and can wait for the disable job.
 */
import { SecondsiteError } from '../domain/errors.js';
import type { VaultClient } from '../manager/provider/vault-client.js';
import type { VmView } from '../protocol/vault-api/fabric.schema.js';
import type {
  DisableReplicationResult,
  ReplicatedItemDetail,
  ReplicatedItemView,
} from '../protocol/vault-api/replicated-items.schema.js';
import { optionalString, parseIntOption, type Parsed } from './args.js';
import type { Command } from './command.js';
import { table } from './simple-command.js';
import { allPages, resolveCloud } from './vault-fabric-refs.js';
import { waitForJob } from './vault-job.commands.js';
import type { ClientCommandFactory } from './vault-policy.commands.js';

const q = encodeURIComponent;

function many(p: Parsed, name: string): string[] {
  const v = p.values[name];
  return Array.isArray(v)
    ? v.filter((x): x is string => typeof x === 'string')
    : typeof v === 'string'
      ? [v]
      : [];
}

function rpo(item: ReplicatedItemView): string {
  return item.lagSeconds === null ? '-' : `${Math.round(item.lagSeconds)} s`;
}

function renderList(items: ReplicatedItemView[]): string {
  if (items.length === 0)
    return "no replicated items: enable replication with 'secondsite vault item enable'";
  return table([
    ['VM', 'STATE', 'HEALTH', 'RPO', 'PRIMARY HOST', 'REPLICA HOST', 'LAST POINT', 'ITEM'],
    ...items.map((i) => [
      i.vmName,
      i.protectionState,
      i.replicationHealth,
      rpo(i),
      i.primaryHostId,
      i.replicaHostId ?? '-',
      i.lastPointCutAt ?? '-',
      i.replicatedItemId,
    ]),
  ]);
}

function renderDetail(i: ReplicatedItemDetail): string {
  return [
    `${i.vmName} (${i.vmId}): ${i.protectionState}, health ${i.replicationHealth}${i.healthReasons.length ? ` (${i.healthReasons.join('; ')})` : ''}`,
    `  item ${i.replicatedItemId}; primary ${i.primaryHostId} on ${i.primaryManagementServerId}; replica ${i.replicaHostId ?? '(not placed yet)'}${i.storageLocation ? ` in '${i.storageLocation}'` : ''} on ${i.recoveryManagementServerId}`,
    `  host state ${i.hostProtectionState ?? '-'}; RPO ${rpo(i)}; last point ${i.lastPointId ?? '-'}${i.lastPointCutAt ? ` (${i.lastPointCutAt})` : ''}`,
    ...(i.lastError ? [`  last error ${i.lastError.code}: ${i.lastError.message}`] : []),
    ...(i.enableJobId ? [`  enable job ${i.enableJobId}`] : []),
    `  ${i.points.length} recovery point(s)${i.points.length ? ':' : ''}`,
    ...i.points
      .slice()
      .reverse()
      .map((p) => `    ${p.cutAt}  ${p.consistency.padEnd(16)} ${p.pointId}`),
  ].join('\n');
}

async function resolveVms(
  client: VaultClient,
  server: string,
  refs: string[],
): Promise<{ managementServerId: string; vmIds: string[] }> {
  const vms = await allPages<VmView>(client, `/v1/vms?managementServer=${q(server)}`, 'vms');
  let managementServerId: string | undefined;
  const vmIds = refs.map((ref) => {
    const found = vms.filter((v) => v.vmId === ref || v.name === ref || `${v.hostId}/${v.vmId}` === ref);
    if (found.length !== 1) {
      throw new SecondsiteError(
        found.length === 0 ? 'SECONDSITE_ERR_NOT_FOUND' : 'SECONDSITE_ERR_INVALID_ARGUMENT',
        found.length === 0
          ? `no VM '${ref}' on management server ${server}: list them with 'secondsite vault vm list --management-server ${server}'`
          : `several VMs are named '${ref}' on ${server}: give the VM id`,
        { vm: ref },
      );
    }
    managementServerId = found[0]?.managementServerId;
    return found[0] ? `${found[0].hostId}/${found[0].vmId}` : ref;
  });
  if (!managementServerId)
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'give at least one --vm');
  return { managementServerId, vmIds };
}

export function itemCommands(clientCommand: ClientCommandFactory): Command[] {
  const enableUsage = `usage: secondsite vault item enable --management-server SERVER (--vm VM ... | --cloud CLOUD)
                                  [--wait] [--timeout-seconds N]

Enables replication for VMs of a primary cloud that a cloud pairing protects: each VM becomes a
replicated item, and a job chooses its replica host in the recovery cloud (capacity, mapped networks,
storage mapping), authorizes the hosts, starts replication and waits for the first recovery point.
VMs already protected keep their item. --cloud protects every VM of the cloud. Needs the
Contributor or Owner role.

  --management-server SERVER  the primary management server (name or id)
  --vm VM                     a VM (name or id); repeat for more
  --cloud CLOUD               every VM of this primary cloud (name, or SERVER/NAME)
  --wait                      wait for the enable jobs and show their progress
  --timeout-seconds N         how long --wait waits (default 3600)`;
  const enable: Command = clientCommand(
    ['item', 'enable'],
    'enable replication for VMs or a whole primary cloud',
    enableUsage,
    {
      'management-server': { type: 'string' },
      vm: { type: 'string', multiple: true },
      cloud: { type: 'string' },
      wait: { type: 'boolean' },
      'timeout-seconds': { type: 'string' },
    },
    async (client, p, io) => {
      const server = optionalString(p, 'management-server');
      const cloudRef = optionalString(p, 'cloud');
      const vmRefs = many(p, 'vm');
      if (vmRefs.length > 0 === (cloudRef !== undefined))
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `give --vm or --cloud (one of them)\n\n${enableUsage}`,
        );
      let body: Record<string, unknown>;
      if (cloudRef !== undefined) {
        const cloud = await resolveCloud(
          client,
          server && !cloudRef.includes('/') ? `${server}/${cloudRef}` : cloudRef,
        );
        body = { managementServerId: cloud.managementServerId, cloudId: cloud.cloudId };
      } else {
        if (!server)
          throw new SecondsiteError(
            'SECONDSITE_ERR_INVALID_ARGUMENT',
            `--management-server is needed with --vm\n\n${enableUsage}`,
          );
        body = await resolveVms(client, server, vmRefs);
      }
      const r = await client.post<{
        items: Array<{ replicatedItemId: string; vmName: string; jobId: string | null }>;
      }>('/v1/replicated-items', body);
      const lines = r.items.map(
        (i) => `${i.vmName}: item ${i.replicatedItemId}${i.jobId ? `, job ${i.jobId}` : ''}`,
      );
      if (p.values['wait'] === true) {
        const timeoutSeconds = parseIntOption(
          optionalString(p, 'timeout-seconds'),
          'timeout-seconds',
          1,
          30 * 86400,
          3600,
        );
        let failed = 0;
        for (const i of r.items) {
          if (!i.jobId) continue;
          if (!p.json) io.out(`${i.vmName}:`);
          const status = await waitForJob(
            client,
            i.jobId,
            p.json ? { out: () => undefined, err: (text: string) => io.err(text) } : io,
            {
              json: p.json,
              timeoutSeconds,
            },
          );
          if (status !== 0) failed++;
        }
        if (failed > 0)
          throw new SecondsiteError(
            'SECONDSITE_ERR_INVALID_STATE',
            `${failed} of ${r.items.length} enable job(s) did not succeed; see 'secondsite vault job show ID'`,
          );
      }
      return { json: r, text: lines.join('\n') };
    },
  );
  const list = clientCommand(
    ['item', 'list'],
    'list replicated items with state, health and RPO',
    `usage: secondsite vault item list [--management-server ID] [--state STATE]

Lists replicated items: protection state (Enabling, InitialReplicationInProgress, Protected,
EnableFailed, Disabling), replication health, RPO (time since the last recovery point) and hosts.`,
    { 'management-server': { type: 'string' }, state: { type: 'string' } },
    async (client, p) => {
      const filters = [
        ...(optionalString(p, 'management-server')
          ? [`managementServerId=${q(optionalString(p, 'management-server') ?? '')}`]
          : []),
        ...(optionalString(p, 'state') ? [`protectionState=${q(optionalString(p, 'state') ?? '')}`] : []),
      ];
      const items = await allPages<ReplicatedItemView>(
        client,
        `/v1/replicated-items${filters.length ? `?${filters.join('&')}` : ''}`,
        'items',
      );
      return { json: items, text: renderList(items) };
    },
  );
  const show = clientCommand(
    ['item', 'show'],
    'show a replicated item with its recovery points',
    `usage: secondsite vault item show ITEM

ITEM is an item id, or a VM name that only one item has.`,
    {},
    async (client, p) => {
      const ref = p.positionals[0];
      if (!ref) throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'the ITEM is missing');
      const item = await client.get<ReplicatedItemDetail>(`/v1/replicated-items/${q(ref)}`);
      return { json: item, text: renderDetail(item) };
    },
  );
  const disableUsage = `usage: secondsite vault item disable ITEM [--delete-replica | --keep-replica | --force]
                                   [--wait] [--timeout-seconds N]

Disables replication of a replicated item: a job disables the relationship on the primary host
and removes the item. The replica and its recovery points on the replica host are deleted or kept
as the pairing's policy says (deleteReplicaOnDisable), unless an option says otherwise. An item
being disabled already answers its running job. Needs the Contributor or Owner role.

  ITEM                 an item id, or a VM name that only one item has
  --delete-replica     delete the replica on the replica host
  --keep-replica       keep the replica (its points stay on the replica host)
  --force              remove the item from the vault without contacting its hosts, for a site that
                       is gone; the hosts keep their relationship and replica (disable and delete
                       them there with 'secondsite host' if they come back)
  --wait               wait for the disable job and show its progress
  --timeout-seconds N  how long --wait waits (default 600)`;
  const disable = clientCommand(
    ['item', 'disable'],
    'disable replication of a replicated item',
    disableUsage,
    {
      'delete-replica': { type: 'boolean' },
      'keep-replica': { type: 'boolean' },
      force: { type: 'boolean' },
      wait: { type: 'boolean' },
      'timeout-seconds': { type: 'string' },
    },
    async (client, p, io) => {
      const ref = p.positionals[0];
      if (!ref)
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `the ITEM is missing\n\n${disableUsage}`,
        );
      const del = p.values['delete-replica'] === true;
      const keep = p.values['keep-replica'] === true;
      if (del && keep)
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          'give --delete-replica or --keep-replica, not both',
        );
      const force = p.values['force'] === true;
      const query = new URLSearchParams();
      if (del || keep) query.set('deleteReplica', String(del));
      if (force) query.set('force', 'true');
      const r = await client.call<DisableReplicationResult>(
        'DELETE',
        `/v1/replicated-items/${q(ref)}${query.size > 0 ? `?${query.toString()}` : ''}`,
      );
      const line = r.force
        ? `${r.vmName}: removing item ${r.replicatedItemId} without contacting its hosts (forced), job ${r.jobId}`
        : `${r.vmName}: disabling item ${r.replicatedItemId} (${r.deleteReplica ? 'deleting' : 'keeping'} the replica), job ${r.jobId}`;
      if (p.values['wait'] === true) {
        const timeoutSeconds = parseIntOption(
          optionalString(p, 'timeout-seconds'),
          'timeout-seconds',
          1,
          30 * 86400,
          600,
        );
        if (!p.json) io.out(line);
        const status = await waitForJob(
          client,
          r.jobId,
          p.json ? { out: () => undefined, err: (text: string) => io.err(text) } : io,
          { json: p.json, timeoutSeconds },
        );
        if (status !== 0)
          throw new SecondsiteError(
            'SECONDSITE_ERR_INVALID_STATE',
            `the disable job ${r.jobId} did not succeed; see 'secondsite vault job show ${r.jobId}', then disable the item again`,
          );
        return { json: r, text: '' };
      }
      return { json: r, text: line };
    },
  );
  return [enable, list, show, disable];
}

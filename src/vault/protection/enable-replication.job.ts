/**
 * Job kind `enable-replication` (docs/design/protection.md section 5): one replicated item from
 * `Enabling` to `Protected`.
 *
 *   place      choose the replica host and storage location (replica-placement.ts) and store them on
 *              the item before any command is sent; a re-run reads the stored choice
 *   authorize  send the derived authorization lists (now including this pairing) to the recovery and
 *              the primary management servers; both hosts of the item must acknowledge
 *   enable     the primary management server enables the relationship on the primary host
 *   wait       until the replication status shows a first recovery point: the item is Protected
 *
 * A failed step marks the item EnableFailed (enabling it again starts a new job, which resumes from
 * what is stored: a placed item keeps its replica host).
 */
import { z } from 'zod/v4';
import { SecondsiteError } from '../../domain/errors.js';
import { placeReplica } from '../../domain/vault/replica-placement.js';
import type { Queryable } from '../../persistence/database.js';
import {
  AUTHORIZATION_APPLY_COMMAND,
  authorizationApplyResultSchema,
  RELATIONSHIP_ENABLE_COMMAND,
  relationshipEnableResultSchema,
} from '../../protocol/vault-api/protection-commands.schema.js';
import { defineJobKind, step, type StepContext } from '../jobs/job-kind.js';
import type { JobsService } from '../jobs/jobs.service.js';
import { serverAuthorization } from './authorization-lists.js';

export const ENABLE_REPLICATION = 'enable-replication';
/** How long the first recovery point may take (initial replication of big disks takes hours). */
export const DEFAULT_INITIAL_REPLICATION_TIMEOUT_SECONDS = 24 * 3600;
const COMMAND_TIMEOUT_SECONDS = 120;

const paramsSchema = z.object({
  replicatedItemId: z.string(),
  initialReplicationTimeoutSeconds: z.number().int().min(1),
});
type Params = z.infer<typeof paramsSchema>;
type Ctx = StepContext<Params>;

interface ItemFacts {
  replicated_item_id: string;
  vm_id: string;
  vm_name: string;
  primary_management_server_id: string;
  primary_host_id: string;
  recovery_management_server_id: string;
  recovery_cloud_id: string;
  replica_host_id: string | null;
  storage_location: string | null;
  copy_frequency_seconds: number;
  retention_hours: number;
  app_consistent_frequency_hours: number;
  compression: boolean;
  initial_replication_start_at: Date | null;
  resync_mode: string;
  resync_window: string | null;
}

async function itemFacts(db: Queryable, replicatedItemId: string): Promise<ItemFacts> {
  const r = await db.query<ItemFacts>(
    `SELECT i.replicated_item_id, i.vm_id, i.vm_name, i.primary_management_server_id, i.primary_host_id,
            i.recovery_management_server_id, p.recovery_cloud_id, i.replica_host_id, i.storage_location,
            pol.copy_frequency_seconds, pol.retention_hours, pol.app_consistent_frequency_hours,
            pol.compression, pol.initial_replication_start_at, pol.resync_mode, pol.resync_window
     FROM replicated_items i
     JOIN cloud_pairings p USING (pairing_id)
     JOIN replication_policies pol ON pol.policy_id = p.policy_id
     WHERE i.replicated_item_id = $1`,
    [replicatedItemId],
  );
  const row = r.rows[0];
  if (!row)
    throw new SecondsiteError('SECONDSITE_ERR_NOT_FOUND', `replicated item ${replicatedItemId} is gone`);
  return row;
}

interface VmFacts {
  disks: Array<{ diskId: string; sizeBytes: number }>;
  nics: Array<{ nicId: string; vmNetworkId: string | null }>;
}

async function vmFacts(db: Queryable, item: ItemFacts): Promise<VmFacts> {
  const r = await db.query<VmFacts>(
    'SELECT disks, nics FROM fabric_vms WHERE management_server_id = $1 AND host_id = $2 AND vm_id = $3',
    [item.primary_management_server_id, item.primary_host_id, item.vm_id],
  );
  const vm = r.rows[0];
  if (!vm) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_NOT_FOUND',
      `VM ${item.vm_name} (${item.vm_id}) is no longer in the inventory of its management server; refresh the inventory ('secondsite vault management-server refresh')`,
    );
  }
  return vm;
}

interface Placement {
  replicaHostId: string;
  storageLocation: string;
  address: string;
  port: number;
}

async function replicaEndpoint(
  db: Queryable,
  item: ItemFacts,
  hostId: string,
  storageLocation: string,
): Promise<Placement> {
  const r = await db.query<{ replication_address: string; replication_port: number }>(
    'SELECT replication_address, replication_port FROM fabric_hosts WHERE management_server_id = $1 AND host_id = $2',
    [item.recovery_management_server_id, hostId],
  );
  const h = r.rows[0];
  if (!h) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_NOT_FOUND',
      `replica host ${hostId} left the inventory of the recovery management server; disable and enable replication again to place the replica elsewhere`,
    );
  }
  return { replicaHostId: hostId, storageLocation, address: h.replication_address, port: h.replication_port };
}

async function place(ctx: Ctx): Promise<Placement> {
  return ctx.transaction(async (tx) => {
    const item = await itemFacts(tx, ctx.params.replicatedItemId);
    if (item.replica_host_id !== null && item.storage_location !== null)
      return replicaEndpoint(tx, item, item.replica_host_id, item.storage_location);
    const vm = await vmFacts(tx, item);
    const hosts = await tx.query<{
      host_id: string;
      connection_state: string;
      storage_locations: Array<{ name: string; storageClassification: string; freeBytes: number }>;
      items: string;
    }>(
      `SELECT h.host_id, h.connection_state, h.storage_locations,
              (SELECT count(*) FROM replicated_items ri
               WHERE ri.recovery_management_server_id = h.management_server_id AND ri.replica_host_id = h.host_id) AS items
       FROM fabric_cloud_hosts ch JOIN fabric_hosts h USING (management_server_id, host_id)
       WHERE ch.management_server_id = $1 AND ch.cloud_id = $2`,
      [item.recovery_management_server_id, item.recovery_cloud_id],
    );
    const networkMappings = await tx.query<{ source_vm_network_id: string; target_vm_network_id: string }>(
      `SELECT source_vm_network_id, target_vm_network_id FROM network_mappings
       WHERE source_management_server_id = $1 AND target_management_server_id = $2`,
      [item.primary_management_server_id, item.recovery_management_server_id],
    );
    const recoveryNetworks = await tx.query<{ vm_network_id: string }>(
      'SELECT vm_network_id FROM fabric_vm_network_clouds WHERE management_server_id = $1 AND cloud_id = $2',
      [item.recovery_management_server_id, item.recovery_cloud_id],
    );
    const classifications = await tx.query<{ target_classification: string }>(
      `SELECT target_classification FROM storage_mappings
       WHERE source_management_server_id = $1 AND target_management_server_id = $2`,
      [item.primary_management_server_id, item.recovery_management_server_id],
    );
    const capacity = await tx.query<{
      capacity_vm_count: number | null;
      capacity_storage_bytes: string | null;
      used_vm_count: string;
      used_storage_bytes: string | null;
    }>(
      `SELECT c.capacity_vm_count, c.capacity_storage_bytes,
              (SELECT count(*) FROM replicated_items ri JOIN cloud_pairings cp USING (pairing_id)
               WHERE cp.recovery_management_server_id = c.management_server_id AND cp.recovery_cloud_id = c.cloud_id
                 AND ri.replica_host_id IS NOT NULL) AS used_vm_count,
              (SELECT sum((d->>'sizeBytes')::bigint)
               FROM replicated_items ri JOIN cloud_pairings cp USING (pairing_id)
               JOIN fabric_vms v ON v.management_server_id = ri.primary_management_server_id
                 AND v.host_id = ri.primary_host_id AND v.vm_id = ri.vm_id,
               jsonb_array_elements(v.disks) d
               WHERE cp.recovery_management_server_id = c.management_server_id AND cp.recovery_cloud_id = c.cloud_id
                 AND ri.replica_host_id IS NOT NULL) AS used_storage_bytes
       FROM fabric_clouds c WHERE c.management_server_id = $1 AND c.cloud_id = $2`,
      [item.recovery_management_server_id, item.recovery_cloud_id],
    );
    const cap = capacity.rows[0];
    const result = placeReplica({
      cloud: {
        vmCount: cap?.capacity_vm_count ?? null,
        storageBytes:
          cap === undefined || cap.capacity_storage_bytes === null
            ? null
            : Number(cap.capacity_storage_bytes),
        usedVmCount: Number(cap?.used_vm_count ?? 0),
        usedStorageBytes: Number(cap?.used_storage_bytes ?? 0),
      },
      vm: {
        vmId: item.vm_id,
        diskBytes: vm.disks.reduce((sum, d) => sum + d.sizeBytes, 0),
        nicNetworks: vm.nics.map((n) => ({ nicId: n.nicId, vmNetworkId: n.vmNetworkId })),
      },
      hosts: hosts.rows.map((h) => ({
        hostId: h.host_id,
        connected: h.connection_state === 'connected',
        storageLocations: h.storage_locations,
        replicatedItems: Number(h.items),
      })),
      networkMappings: new Map(
        networkMappings.rows.map((m) => [m.source_vm_network_id, m.target_vm_network_id]),
      ),
      recoveryNetworks: new Set(recoveryNetworks.rows.map((n) => n.vm_network_id)),
      allowedClassifications:
        classifications.rows.length === 0 ? null : classifications.rows.map((c) => c.target_classification),
    });
    if (!result.ok) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `no host of the recovery cloud can keep the replica of ${item.vm_name}: ${result.reasons.join('; ')}`,
        { reasons: [...result.reasons] },
      );
    }
    await tx.query(
      `UPDATE replicated_items SET replica_host_id = $2, storage_location = $3, updated_at = now()
       WHERE replicated_item_id = $1 AND replica_host_id IS NULL`,
      [item.replicated_item_id, result.hostId, result.storageLocation],
    );
    return replicaEndpoint(tx, item, result.hostId, result.storageLocation);
  });
}

async function authorize(ctx: Ctx): Promise<unknown> {
  const item = await itemFacts(ctx.db, ctx.params.replicatedItemId);
  const placement = ctx.output<Placement>('place');
  const sides: Array<{ key: string; managementServerId: string; required: string[] }> =
    item.primary_management_server_id === item.recovery_management_server_id
      ? [
          {
            key: 'site',
            managementServerId: item.primary_management_server_id,
            required: [item.primary_host_id, placement.replicaHostId],
          },
        ]
      : [
          {
            key: 'recovery',
            managementServerId: item.recovery_management_server_id,
            required: [placement.replicaHostId],
          },
          {
            key: 'primary',
            managementServerId: item.primary_management_server_id,
            required: [item.primary_host_id],
          },
        ];
  const results: Record<string, unknown> = {};
  for (const side of sides) {
    const lists = await ctx.transaction((tx) => serverAuthorization(tx, side.managementServerId));
    await ctx.progress(
      Math.round((100 * Object.keys(results).length) / sides.length),
      `sending authorization lists (revision ${lists.revision})`,
    );
    results[side.key] = await ctx.sendCommand({
      managementServerId: side.managementServerId,
      kind: AUTHORIZATION_APPLY_COMMAND,
      key: side.key,
      body: {
        revision: lists.revision,
        hosts: lists.hosts.map((h) => ({ hostId: h.hostId, entries: h.entries, trustGroups: h.trustGroups })),
        required: side.required,
      },
      timeoutSeconds: COMMAND_TIMEOUT_SECONDS,
      parse: (r) => authorizationApplyResultSchema.parse(r),
    });
  }
  return results;
}

async function enable(ctx: Ctx): Promise<unknown> {
  const item = await itemFacts(ctx.db, ctx.params.replicatedItemId);
  const vm = await vmFacts(ctx.db, item);
  const placement = ctx.output<Placement>('place');
  const result = await ctx.sendCommand({
    managementServerId: item.primary_management_server_id,
    kind: RELATIONSHIP_ENABLE_COMMAND,
    body: {
      hostId: item.primary_host_id,
      relationship: {
        vmId: item.vm_id,
        diskIds: vm.disks.map((d) => d.diskId),
        replica: {
          hostId: placement.replicaHostId,
          address: placement.address,
          port: placement.port,
          storageLocation: placement.storageLocation,
        },
        policy: {
          copyFrequencySeconds: item.copy_frequency_seconds,
          retentionHours: item.retention_hours,
          compression: item.compression,
          appConsistentFrequencySeconds: item.app_consistent_frequency_hours * 3600,
          resyncMode: item.resync_mode,
          ...(item.resync_window ? { resyncWindow: item.resync_window } : {}),
        },
        ...(item.initial_replication_start_at
          ? { initialReplicationStartAt: item.initial_replication_start_at.toISOString() }
          : {}),
      },
    },
    timeoutSeconds: COMMAND_TIMEOUT_SECONDS,
    parse: (r) => relationshipEnableResultSchema.parse(r),
  });
  await ctx.transaction((tx) =>
    tx.query(
      `UPDATE replicated_items SET protection_state = 'InitialReplicationInProgress', updated_at = now()
       WHERE replicated_item_id = $1 AND protection_state = 'Enabling'`,
      [item.replicated_item_id],
    ),
  );
  return result;
}

async function waitFirstPoint(ctx: Ctx): Promise<unknown> {
  await ctx.progress(0, 'initial replication');
  const point = await ctx.waitFor(
    async () => {
      const r = await ctx.db.query<{ last_point_id: string | null; protection_state: string }>(
        'SELECT last_point_id, protection_state FROM replicated_items WHERE replicated_item_id = $1',
        [ctx.params.replicatedItemId],
      );
      const row = r.rows[0];
      if (!row || row.protection_state === 'Disabling') {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          'replication was disabled during the initial replication (a disable job removes the item)',
        );
      }
      return row.last_point_id ?? undefined;
    },
    {
      timeoutSeconds: ctx.params.initialReplicationTimeoutSeconds,
      timeoutMessage: `no recovery point within ${ctx.params.initialReplicationTimeoutSeconds} s: check the item's last error ('secondsite vault item show') and the primary host's replication status`,
      pollMs: 1000,
    },
  );
  await ctx.transaction((tx) =>
    tx.query(
      `UPDATE replicated_items SET protection_state = 'Protected', updated_at = now()
       WHERE replicated_item_id = $1 AND protection_state IN ('Enabling', 'InitialReplicationInProgress')`,
      [ctx.params.replicatedItemId],
    ),
  );
  return { lastPointId: point };
}

/** Marks the item EnableFailed when a step fails, then fails the step. */
function marking(run: (ctx: Ctx) => Promise<unknown>): (ctx: Ctx) => Promise<unknown> {
  return async (ctx) => {
    try {
      return await run(ctx);
    } catch (e) {
      if (!ctx.signal.aborted) {
        await ctx
          .transaction((tx) =>
            tx.query(
              `UPDATE replicated_items SET protection_state = 'EnableFailed', updated_at = now()
               WHERE replicated_item_id = $1 AND protection_state IN ('Enabling', 'InitialReplicationInProgress')`,
              [ctx.params.replicatedItemId],
            ),
          )
          .catch(() => undefined);
      }
      throw e;
    }
  };
}

export const enableReplicationJob = defineJobKind<Params>({
  kind: ENABLE_REPLICATION,
  cancellable: false,
  params: paramsSchema,
  title: (_p, name) => `Enable replication of ${name}`,
  steps: [
    step('place', 'Choose the replica host and storage location', marking(place)),
    step('authorize', 'Authorize the hosts to replicate to each other', marking(authorize)),
    step('enable', 'Enable replication on the primary host', marking(enable)),
    step('wait-first-point', 'Initial replication (until the first recovery point)', marking(waitFirstPoint)),
  ],
});

/** Starts (or finds the running) enable job of an item. */
export function startEnableReplication(
  jobs: JobsService,
  item: { readonly replicatedItemId: string; readonly vmName: string },
  startedBy: string,
  initialReplicationTimeoutSeconds = DEFAULT_INITIAL_REPLICATION_TIMEOUT_SECONDS,
): Promise<{ jobId: string; created: boolean }> {
  return jobs.start({
    kind: ENABLE_REPLICATION,
    params: { replicatedItemId: item.replicatedItemId, initialReplicationTimeoutSeconds },
    target: { type: 'replicated-item', id: item.replicatedItemId, name: item.vmName },
    startedBy,
    exclusiveKey: `${ENABLE_REPLICATION}:${item.replicatedItemId}`,
  });
}

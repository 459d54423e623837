/**
 * Enabling replication for VMs (docs/design/protection.md section 5): each VM of a paired primary
 * cloud becomes a replicated item in `Enabling` with an enable job. Idempotent: a VM that is a
 * replicated item already keeps its item and running job; one whose enable failed starts a new job
 * (which reuses the stored placement). Refusals name the VM and what to do.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Database } from '../../persistence/database.js';
import type { EnableReplicationRequest } from '../../protocol/vault-api/replicated-items.schema.js';
import { newId } from '../auth/secret-token.js';
import { refuseManagementVm } from './management-vm.js';
import type { JobsService } from '../jobs/jobs.service.js';
import { startEnableReplication } from './enable-replication.job.js';

interface VmRow {
  vm_id: string;
  name: string;
  host_id: string;
  cloud_id: string | null;
  pairing_id: string | null;
  recovery_management_server_id: string | null;
}

/** A VM by `VM_ID` (unique on the management server) or `HOST_ID/VM_ID` (a VM id is its host's). */
function pick(rows: readonly VmRow[], ref: string, ms: string): VmRow {
  const slash = ref.indexOf('/');
  const found =
    slash < 0
      ? rows.filter((v) => v.vm_id === ref)
      : rows.filter((v) => v.host_id === ref.slice(0, slash) && v.vm_id === ref.slice(slash + 1));
  if (found.length === 1 && found[0]) return found[0];
  throw found.length === 0
    ? new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `no VM ${ref} on management server ${ms}: list them with 'secondsite vault vm list' (refresh the inventory if the VM is new)`,
        { vm: ref },
      )
    : new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `VM id ${ref} is on several hosts (${found.map((v) => v.host_id).join(', ')}): give HOST_ID/${ref}`,
        { vm: ref },
      );
}

export interface EnabledItem {
  replicatedItemId: string;
  vmId: string;
  vmName: string;
  jobId: string | null;
}

export async function enableReplication(
  db: Database,
  jobs: JobsService,
  request: EnableReplicationRequest,
  startedBy: string,
  initialReplicationTimeoutSeconds?: number,
): Promise<EnabledItem[]> {
  const ms = request.managementServerId;
  const all = await db.query<VmRow>(
    `SELECT v.vm_id, v.name, v.host_id, v.cloud_id, p.pairing_id, p.recovery_management_server_id
     FROM fabric_vms v
     LEFT JOIN cloud_pairings p
       ON p.primary_management_server_id = v.management_server_id AND p.primary_cloud_id = v.cloud_id
     WHERE v.management_server_id = $1 AND ($2::text IS NULL OR v.cloud_id = $2)
     ORDER BY v.host_id, v.vm_id`,
    [ms, request.cloudId ?? null],
  );
  if (request.cloudId !== undefined && all.rows.length === 0) {
    const cloud = await db.query(
      'SELECT 1 FROM fabric_clouds WHERE management_server_id = $1 AND cloud_id = $2',
      [ms, request.cloudId],
    );
    if (cloud.rows.length === 0) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `no cloud ${request.cloudId} on management server ${ms}`,
      );
    }
  }
  const vms = {
    rows: request.vmIds === undefined ? all.rows : request.vmIds.map((ref) => pick(all.rows, ref, ms)),
  };
  const server = await db.query<{ name: string; management_vm: { hostId: string; vmId: string } | null }>(
    'SELECT name, management_vm FROM management_servers WHERE management_server_id = $1',
    [ms],
  );
  for (const vm of vms.rows)
    refuseManagementVm(server.rows[0]?.management_vm ?? null, vm, server.rows[0]?.name ?? ms);
  const unpaired = vms.rows.filter((v) => v.pairing_id === null);
  if (unpaired.length > 0) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_STATE',
      `${unpaired
        .map(
          (v) =>
            `VM ${v.name} (${v.vm_id}) is ${v.cloud_id === null ? 'in no cloud' : `in cloud ${v.cloud_id}, which is not the primary cloud of a pairing`}`,
        )
        .join('; ')}: pair its cloud with a recovery cloud first ('secondsite vault pairing create')`,
      { vmIds: unpaired.map((v) => v.vm_id) },
    );
  }
  const out: EnabledItem[] = [];
  for (const vm of vms.rows) {
    const row = await db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO replicated_items (replicated_item_id, primary_management_server_id, vm_id, vm_name,
           primary_host_id, pairing_id, recovery_management_server_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (primary_management_server_id, primary_host_id, vm_id) DO NOTHING`,
        [newId('item'), ms, vm.vm_id, vm.name, vm.host_id, vm.pairing_id, vm.recovery_management_server_id],
      );
      const r = await tx.query<{
        replicated_item_id: string;
        protection_state: string;
        enable_job_id: string | null;
      }>(
        `UPDATE replicated_items SET protection_state = 'Enabling', updated_at = now()
         WHERE primary_management_server_id = $1 AND primary_host_id = $2 AND vm_id = $3
           AND protection_state IN ('Enabling', 'EnableFailed')
         RETURNING replicated_item_id, protection_state, enable_job_id`,
        [ms, vm.host_id, vm.vm_id],
      );
      if (r.rows[0]) return { ...r.rows[0], start: true };
      const existing = await tx.query<{
        replicated_item_id: string;
        protection_state: string;
        enable_job_id: string | null;
      }>(
        `SELECT replicated_item_id, protection_state, enable_job_id FROM replicated_items
         WHERE primary_management_server_id = $1 AND primary_host_id = $2 AND vm_id = $3`,
        [ms, vm.host_id, vm.vm_id],
      );
      const e = existing.rows[0];
      if (!e) throw new SecondsiteError('SECONDSITE_ERR_INTERNAL', `replicated item of ${vm.vm_id} vanished`);
      if (e.protection_state === 'Disabling') {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          `replication of VM ${vm.name} is being disabled; enable it again when that job has finished`,
          { vmId: vm.vm_id },
        );
      }
      return { ...e, start: false };
    });
    let jobId = row.enable_job_id;
    if (row.start) {
      const started = await startEnableReplication(
        jobs,
        { replicatedItemId: row.replicated_item_id, vmName: vm.name },
        startedBy,
        initialReplicationTimeoutSeconds,
      );
      jobId = started.jobId;
      await db.query('UPDATE replicated_items SET enable_job_id = $2 WHERE replicated_item_id = $1', [
        row.replicated_item_id,
        jobId,
      ]);
    }
    out.push({ replicatedItemId: row.replicated_item_id, vmId: vm.vm_id, vmName: vm.name, jobId });
  }
  return out;
}

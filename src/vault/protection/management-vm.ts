/**
 * The management server's own VM must not sit in a protected cloud (DESIGN.md section 3, single
 * management server): it runs the orchestration that a failover of that cloud needs, so it is protected
 * with host replication directly (`secondsite host replication enable`, failed over by the documented
 * complete-outage runbook). Each management server names its VM in its inventory; the vault refuses to
 * pair a primary cloud that holds it and to enable replication for it.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Queryable } from '../../persistence/database.js';

const ADVICE =
  "protect it with host replication ('secondsite host replication enable' on its host) and keep it out of protected clouds";

/** Refuses when the primary cloud holds a management server's VM. */
export async function refuseManagementVmInCloud(
  tx: Queryable,
  managementServerId: string,
  cloudId: string,
): Promise<void> {
  const r = await tx.query<{ name: string; vm_name: string }>(
    `SELECT m.name, v.name AS vm_name FROM management_servers m
     JOIN fabric_vms v ON v.management_server_id = m.management_server_id
      AND v.host_id = m.management_vm->>'hostId' AND v.vm_id = m.management_vm->>'vmId'
     WHERE m.management_server_id = $1 AND v.cloud_id = $2`,
    [managementServerId, cloudId],
  );
  const hit = r.rows[0];
  if (hit) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_STATE',
      `cloud ${cloudId} holds VM ${hit.vm_name}, which runs management server ${hit.name}: a protected cloud must not hold it (its failover needs the management server); move the VM to a host outside the cloud, or ${ADVICE}`,
      { managementServerId, cloudId },
    );
  }
}

/** Refuses enabling replication of a management server's VM. */
export function refuseManagementVm(
  managementVm: { hostId: string; vmId: string } | null,
  vm: { host_id: string; vm_id: string; name: string },
  managementServerName: string,
): void {
  if (managementVm && managementVm.hostId === vm.host_id && managementVm.vmId === vm.vm_id) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_STATE',
      `VM ${vm.name} runs management server ${managementServerName} and cannot be a replicated item: ${ADVICE}`,
      { hostId: vm.host_id, vmId: vm.vm_id },
    );
  }
}

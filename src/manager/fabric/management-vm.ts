/**
 * The VM that runs this management server (DESIGN.md section 3, single management server topology):
 * `secondsite manager management-vm set HOST/VM` names it, and the inventory carries it, so the vault
 * refuses to pair a cloud holding it or to protect it (it is protected with host replication directly).
 * Control-socket routes: GET / PUT / DELETE /v1/management-vm.
 */
import type { Route } from '../../control-api/control-server.js';
import { SecondsiteError } from '../../domain/errors.js';
import type { Database } from '../../persistence/database.js';

export interface ManagementVmView {
  /** Null: not set (the management server does not run on one of its hosts). */
  readonly managementVm: { readonly hostId: string; readonly vmId: string } | null;
}

const ID = /^[a-zA-Z0-9_-]{1,64}$/;
const HOST = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

async function view(db: Database): Promise<ManagementVmView> {
  const r = await db.query<{ host_id: string; vm_id: string }>('SELECT host_id, vm_id FROM management_vm');
  const row = r.rows[0];
  return { managementVm: row ? { hostId: row.host_id, vmId: row.vm_id } : null };
}

export function managementVmRoutes(db: Database): Route[] {
  return [
    { method: 'GET', path: '/v1/management-vm', handler: async () => ({ body: await view(db) }) },
    {
      method: 'PUT',
      path: '/v1/management-vm',
      handler: async ({ body }) => {
        const b = (body ?? {}) as { hostId?: unknown; vmId?: unknown };
        if (
          typeof b.hostId !== 'string' ||
          !HOST.test(b.hostId) ||
          typeof b.vmId !== 'string' ||
          !ID.test(b.vmId)
        ) {
          throw new SecondsiteError(
            'SECONDSITE_ERR_INVALID_ARGUMENT',
            'give the management server VM as HOST/VM: an enrolled host id and the VM id on that host',
          );
        }
        const host = await db.query('SELECT 1 FROM hosts WHERE host_id = $1', [b.hostId]);
        if (host.rows.length === 0) {
          throw new SecondsiteError(
            'SECONDSITE_ERR_NOT_FOUND',
            `host ${b.hostId} is not enrolled in this management server ('secondsite manager host list'); a management server VM on another host needs no setting`,
            { hostId: b.hostId },
          );
        }
        await db.query(
          `INSERT INTO management_vm (host_id, vm_id) VALUES ($1, $2)
           ON CONFLICT (singleton) DO UPDATE SET host_id = excluded.host_id, vm_id = excluded.vm_id
           WHERE (management_vm.host_id, management_vm.vm_id) IS DISTINCT FROM (excluded.host_id, excluded.vm_id)`,
          [b.hostId, b.vmId],
        );
        return { body: await view(db) };
      },
    },
    {
      method: 'DELETE',
      path: '/v1/management-vm',
      handler: async () => {
        await db.query('DELETE FROM management_vm');
        return { body: await view(db) };
      },
    },
  ];
}

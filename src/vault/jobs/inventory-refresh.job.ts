/**
 * Job kind `inventory-refresh` (docs/design/vault.md section 7): the vault asks a management server's
 * provider to sync its inventory (command `inventory.sync`; the provider pushes its inventory if the
 * vault's version differs, and answers its own version), then waits until the vault holds that
 * version or a newer one (at once when it already does).
 */
import { z } from 'zod/v4';
import { inventorySyncResultSchema } from '../../protocol/vault-api/jobs.schema.js';
import type { Queryable } from '../../persistence/database.js';
import { defineJobKind, step } from './job-kind.js';
import type { JobsService } from './jobs.service.js';

export const INVENTORY_REFRESH = 'inventory-refresh';
export const INVENTORY_SYNC_COMMAND = 'inventory.sync';
export const DEFAULT_REFRESH_TIMEOUT_SECONDS = 120;

const paramsSchema = z.object({
  managementServerId: z.string(),
  timeoutSeconds: z.number().int().min(1).max(3600),
});
type Params = z.infer<typeof paramsSchema>;

async function vaultInventoryVersion(db: Queryable, managementServerId: string): Promise<number> {
  const r = await db.query<{ inventory_version: string }>(
    'SELECT inventory_version FROM management_servers WHERE management_server_id = $1',
    [managementServerId],
  );
  return Number(r.rows[0]?.inventory_version ?? 0);
}

export const inventoryRefreshJob = defineJobKind<Params>({
  kind: INVENTORY_REFRESH,
  cancellable: true,
  params: paramsSchema,
  title: (_p, name) => `Refresh the inventory of management server ${name}`,
  steps: [
    step('sync', 'Ask the management server to sync its inventory', (ctx) =>
      ctx.sendCommand({
        managementServerId: ctx.params.managementServerId,
        kind: INVENTORY_SYNC_COMMAND,
        body: {},
        timeoutSeconds: ctx.params.timeoutSeconds,
        parse: (r) => inventorySyncResultSchema.parse(r),
      }),
    ),
    step('wait-inventory', 'Wait for the vault to hold that inventory version', async (ctx) => {
      const wanted = ctx.output<{ inventoryVersion: number }>('sync').inventoryVersion;
      await ctx.progress(0, `waiting for inventory version ${wanted}`);
      return ctx.waitFor(
        async () => {
          const held = await vaultInventoryVersion(ctx.db, ctx.params.managementServerId);
          return held >= wanted ? { inventoryVersion: held } : undefined;
        },
        {
          timeoutSeconds: ctx.params.timeoutSeconds,
          timeoutMessage: `the management server answered inventory version ${wanted} but the vault did not receive it within ${ctx.params.timeoutSeconds} s; check the management server's log for a failed inventory push`,
          pollMs: 500,
        },
      );
    }),
  ],
});

/** Starts (or finds the running) inventory refresh of a management server. */
export function startInventoryRefresh(
  jobs: JobsService,
  server: { readonly managementServerId: string; readonly name: string },
  startedBy: string,
  timeoutSeconds = DEFAULT_REFRESH_TIMEOUT_SECONDS,
): Promise<{ jobId: string; created: boolean }> {
  return jobs.start({
    kind: INVENTORY_REFRESH,
    params: { managementServerId: server.managementServerId, timeoutSeconds },
    target: { type: 'management-server', id: server.managementServerId, name: server.name },
    startedBy,
    exclusiveKey: `${INVENTORY_REFRESH}:${server.managementServerId}`,
  });
}

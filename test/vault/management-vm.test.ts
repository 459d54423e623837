/**
 * The management server's own VM must not sit in a protected cloud (DESIGN.md section 3): a pairing
 * whose primary cloud holds it is refused, and a VM named as the management server's VM after its
 * cloud was paired cannot be protected; as a recovery cloud, or once the VM is elsewhere, all is fine.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSecondsiteError } from '../../src/domain/errors.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { syntheticInventory } from './fabric-fixtures.js';
import { startTestVault } from './vault-fixtures.js';

const server = useTestPostgres();

test("a cloud holding the management server's VM cannot be a protected cloud, nor the VM an item", async (t) => {
  const databaseUrl = await server.freshDatabase();
  const v = await startTestVault(server, t, { databaseUrl });
  t.after(() => server.dropDatabase(databaseUrl));
  const r = await v.register('vmm-one');
  const ms = r.identity.registration.managementServerId;
  const send = (version: number, managementVm: { hostId: string; vmId: string } | null) =>
    r.client.call('PUT', `/v1/management-servers/${ms}/inventory`, {
      ...syntheticInventory({ version, clouds: ['prod', 'dr', 'infra'] }),
      managementVm,
    });
  await v.admin.post('/v1/policies', { name: 'gold' });
  const pair = (primary: string, recovery: string) =>
    v.admin.post('/v1/cloud-pairings', {
      primaryManagementServerId: ms,
      primaryCloudId: `cloud-${primary}`,
      recoveryManagementServerId: ms,
      recoveryCloudId: `cloud-${recovery}`,
      policy: 'gold',
    });
  const refused = (e: unknown): boolean =>
    isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE') &&
    /runs management server vmm-one/.test(e.message) &&
    /host replication/.test(e.message);

  // the management server runs in infra-vm-0-0: infra cannot be a primary cloud, but may be a recovery one
  await send(1, { hostId: 'host-infra-0', vmId: 'vm-infra-0-0' });
  await assert.rejects(pair('infra', 'dr'), refused);
  await pair('prod', 'infra');

  // a VM named as the management server's VM after its cloud was paired is refused as an item
  await send(2, { hostId: 'host-prod-0', vmId: 'vm-prod-0-0' });
  await assert.rejects(
    v.admin.post('/v1/replicated-items', { managementServerId: ms, vmIds: ['vm-prod-0-0'] }),
    refused,
  );
  await assert.rejects(
    v.admin.post('/v1/replicated-items', { managementServerId: ms, cloudId: 'cloud-prod' }),
    refused,
  );
});

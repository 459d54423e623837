/**
 * Alerts for certificates that were not renewed (docs/design/certificate-renewal.md; vault.md section
 * 5), against a real PostgreSQL and the vault's monitor: a provider certificate within 30 days of its
 * end raises `provider-certificate-expiring`, resolved by the renewal; a host whose inventory reports a
 * certificate within 30 days of its end raises `host-certificate-expiring`, resolved by the inventory
 * that reports the renewed end. Hosts show their certificate's end.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VaultClient } from '../../src/manager/provider/vault-client.js';
import type { HostView } from '../../src/protocol/vault-api/fabric.schema.js';
import type { Inventory } from '../../src/protocol/vault-api/inventory.schema.js';
import type { AlertView } from '../../src/protocol/vault-api/vault-api.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { until } from '../../src/testing/wait/until.js';
import { syntheticInventory } from './fabric-fixtures.js';
import { beat, renew, startTestVault } from './vault-fixtures.js';

const server = useTestPostgres();
const DAY_MS = 86_400_000;

const openAlert = (admin: VaultClient, kind: string): Promise<AlertView | undefined> =>
  admin.get<{ alerts: AlertView[] }>('/v1/alerts').then((r) => r.alerts.find((a) => a.kind === kind));

test('a provider certificate near its end raises a Critical alert; the renewal resolves it', async (t) => {
  const v = await startTestVault(server, t);
  const ms = await v.register('vmm-east');
  const msId = ms.identity.registration.managementServerId;
  // as if renewal had failed for months: 10 days left
  await v.vault.db.query("UPDATE provider_nodes SET cert_not_after = now() + interval '10 days'");
  const alert = await until('the alert', () => openAlert(v.admin, 'provider-certificate-expiring'), 15_000);
  assert.equal(alert.severity, 'Critical');
  assert.equal(alert.objectId, `${msId}/node-1`);
  assert.match(
    alert.message,
    /management server vmm-east \(node node-1\) ends on .*manager certificate show/,
  );
  const { client: renewed } = await renew(v, ms.client, msId);
  await beat(renewed, msId); // the renewed certificate becomes current: 365 days left
  await until(
    'the alert resolved',
    async () =>
      (await openAlert(v.admin, 'provider-certificate-expiring')) === undefined ? true : undefined,
    15_000,
  );
});

test('a host certificate near its end, as the inventory reports it, raises a Critical alert; the renewed end resolves it', async (t) => {
  const v = await startTestVault(server, t);
  const ms = await v.register('vmm-east');
  const msId = ms.identity.registration.managementServerId;
  const inventory = (version: number, certNotAfter: string | undefined): Inventory => {
    const inv = syntheticInventory({ version, clouds: ['prod'], hostsPerCloud: 2, vmsPerHost: 0 });
    const [first, second] = inv.hosts;
    assert.ok(first && second);
    inv.hosts = [
      { ...first, ...(certNotAfter !== undefined ? { certNotAfter } : {}) },
      { ...second, certNotAfter: new Date(Date.now() + 800 * DAY_MS).toISOString() },
    ];
    return inv;
  };
  const put = (inv: Inventory): Promise<unknown> =>
    ms.client.call('PUT', `/v1/management-servers/${msId}/inventory`, inv);
  const hosts = async (): Promise<HostView[]> =>
    (await v.admin.get<{ hosts: HostView[] }>('/v1/hosts')).hosts;

  await put(inventory(1, undefined)); // a management server that does not report it: no alert
  assert.equal((await hosts())[0]?.certNotAfter, null);
  const soon = new Date(Date.now() + 10 * DAY_MS).toISOString();
  await put(inventory(2, soon));
  const alert = await until('the alert', () => openAlert(v.admin, 'host-certificate-expiring'), 15_000);
  assert.equal(alert.severity, 'Critical');
  assert.equal(alert.objectType, 'host');
  assert.equal(alert.objectId, `${msId}/host-prod-0`);
  assert.match(
    alert.message,
    /host host-prod-0 of management server vmm-east ends on .*renew-certificate host-prod-0/,
  );
  assert.deepEqual(
    (await hosts()).map((h) => [h.hostId, h.certNotAfter === soon]),
    [
      ['host-prod-0', true],
      ['host-prod-1', false],
    ],
  );
  const alerts = await v.admin.get<{ alerts: AlertView[] }>('/v1/alerts');
  assert.equal(
    alerts.alerts.filter((a) => a.kind === 'host-certificate-expiring').length,
    1,
    'only the host near its end',
  );

  await put(inventory(3, new Date(Date.now() + 825 * DAY_MS).toISOString())); // renewed
  await until(
    'the alert resolved',
    async () => ((await openAlert(v.admin, 'host-certificate-expiring')) === undefined ? true : undefined),
    15_000,
  );
});

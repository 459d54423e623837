/**
 * Two vault processes on one database (DESIGN.md section 2): started at the same moment they settle on
 * one identity and one CA, make the first administrator once, and serve the same API: a key made on
 * one registers a management server through the other, whose certificate both accept, and an alert
 * raised by both monitors is one alert.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { registerProvider, providerClient } from '../../src/manager/provider/provider-registration.js';
import type { AlertView, ManagementServerView } from '../../src/protocol/vault-api/vault-api.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { startTestVault } from './vault-fixtures.js';

const server = useTestPostgres();

test('two vault processes on one database share identity, CA, users, keys and alerts', async (t) => {
  const databaseUrl = await server.freshDatabase();
  const [one, two] = await Promise.all([
    startTestVault(server, t, { databaseUrl, heartbeatIntervalSeconds: 1, monitorIntervalMs: 200 }),
    startTestVault(server, t, { databaseUrl, heartbeatIntervalSeconds: 1, monitorIntervalMs: 200 }),
  ]);
  t.after(() => server.dropDatabase(databaseUrl)); // after both vaults' own after hooks
  assert.equal(one.vault.identity.vaultId, two.vault.identity.vaultId);
  assert.equal(one.vault.identity.caCertPem, two.vault.identity.caCertPem);
  const tokens = [one, two].filter((v) => v.adminToken !== null);
  assert.equal(tokens.length, 1, 'the first administrator is made once');
  const admin = tokens[0]!.admin;
  const other = tokens[0] === one ? two : one;
  // the admin token works on the other process too
  const otherAdmin = other.client(tokens[0]!.adminToken ?? '');
  await otherAdmin.post('/v1/users', { name: 'ann', role: 'Reader' });
  assert.deepEqual(
    (await admin.get<{ users: Array<{ name: string }> }>('/v1/users')).users.map((u) => u.name),
    ['admin', 'ann'],
  );
  // a key made through one process registers through the other
  const keyFile = await tokens[0]!.keyFile();
  const dir = await mkdtemp(join(tmpdir(), 'ss-two-'));
  const identity = await registerProvider({
    dataDir: dir,
    keyFile,
    managementServerName: 'vmm-1',
    nodeName: 'node-1',
    vaultUrl: other.vault.url,
  });
  const msId = identity.registration.managementServerId;
  for (const v of [one, two]) {
    const viaThis = providerClient({
      ...identity,
      registration: { ...identity.registration, vaultUrl: v.vault.url },
    });
    await viaThis.post(`/v1/management-servers/${msId}/heartbeat`, {});
  }
  // both monitors see the lost heartbeat; there is one alert
  const deadline = Date.now() + 20_000;
  let alerts: AlertView[] = [];
  while (Date.now() < deadline) {
    alerts = (await admin.get<{ alerts: AlertView[] }>('/v1/alerts')).alerts;
    if (alerts.length > 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 1000));
  alerts = (await otherAdmin.get<{ alerts: AlertView[] }>('/v1/alerts')).alerts;
  assert.equal(alerts.length, 1, JSON.stringify(alerts));
  const ms = await otherAdmin.get<ManagementServerView>(`/v1/management-servers/${msId}`);
  assert.equal(ms.connectionState, 'disconnected');
});

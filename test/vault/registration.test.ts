/**
 * Registration and trust (issue 4, docs/design/vault.md sections 4-5), against a real PostgreSQL: a key
 * registers a management server and is spent; expired, reused, superseded, foreign and tampered keys
 * are refused with a message that says which; a replaced certificate stops working; a certificate of
 * another CA is refused; a lost heartbeat raises a Critical alert that the next heartbeat resolves.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import pg from 'pg';
import { isSecondsiteError, type ErrorCode } from '../../src/domain/errors.js';
import {
  loadProviderIdentity,
  providerClient,
  registerProvider,
} from '../../src/manager/provider/provider-registration.js';
import { ProviderSession } from '../../src/manager/provider/provider-session.js';
import { VaultClient } from '../../src/manager/provider/vault-client.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { AlertView, ManagementServerView } from '../../src/protocol/vault-api/vault-api.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { startTestVault } from './vault-fixtures.js';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const server = useTestPostgres();

const refusedWith = (code: ErrorCode, text: RegExp) => (e: unknown) =>
  isSecondsiteError(e, code) && text.test(e.message);

async function sql(url: string, text: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

test('a key registers a management server once; the certificate authenticates its provider', async (t) => {
  const v = await startTestVault(server, t);
  const ms = await v.register('vmm-east');
  const me = await ms.client.post<{ heartbeatIntervalSeconds: number }>(
    `/v1/management-servers/${ms.identity.registration.managementServerId}/heartbeat`,
    {},
  );
  assert.equal(me.heartbeatIntervalSeconds, 1);
  const list = await v.admin.get<{ managementServers: ManagementServerView[] }>('/v1/management-servers');
  assert.deepEqual(
    list.managementServers.map((m) => [m.name, m.connectionState, m.nodes.map((n) => n.nodeName)]),
    [['vmm-east', 'connected', ['node-1']]],
  );
  // the same key again: spent
  const keyFile = await v.keyFile();
  const dir = await mkdtemp(join(tmpdir(), 'ss-reuse-'));
  await registerProvider({ dataDir: dir, keyFile, managementServerName: 'vmm-west', nodeName: 'node-1' });
  await assert.rejects(
    registerProvider({ dataDir: dir, keyFile, managementServerName: 'vmm-west', nodeName: 'node-2' }),
    refusedWith('SECONDSITE_ERR_KEY_USED', /already used at .*single-use.*vault key create/),
  );
  // a cluster's second node registers as a node of the same management server
  const node2 = await v.register('vmm-west', 'node-2');
  const west = await v.admin.get<ManagementServerView>(
    `/v1/management-servers/${node2.identity.registration.managementServerId}`,
  );
  assert.deepEqual(
    west.nodes.map((n) => n.nodeName),
    ['node-1', 'node-2'],
  );
});

test('expired, superseded, tampered and foreign keys are refused, each with its reason; nothing is spent', async (t) => {
  const v = await startTestVault(server, t);
  const dir = await mkdtemp(join(tmpdir(), 'ss-keys-'));
  const reg = (keyFile: string, name = 'ms-a') =>
    registerProvider({ dataDir: dir, keyFile, managementServerName: name, nodeName: 'node-1' });

  const old = await v.keyFile();
  const newest = await v.keyFile();
  await assert.rejects(
    reg(old),
    refusedWith('SECONDSITE_ERR_KEY_SUPERSEDED', /only the newest key is valid/),
  );

  const key = JSON.parse(await readFile(newest, 'utf8')) as { secret: string; keyId: string };
  const tampered = `${newest}.tampered`;
  await writeFile(tampered, JSON.stringify({ ...key, secret: `${key.secret.slice(0, -2)}xx` }));
  await assert.rejects(reg(tampered), refusedWith('SECONDSITE_ERR_KEY_INVALID', /damaged or altered/));
  await writeFile(tampered, JSON.stringify({ ...key, keyId: 'key_000000000000000000000000' }));
  await assert.rejects(reg(tampered), refusedWith('SECONDSITE_ERR_KEY_INVALID', /damaged or altered/));
  await writeFile(tampered, '{"format":"secondsite-registration-key-1"');
  await assert.rejects(
    reg(tampered),
    refusedWith('SECONDSITE_ERR_KEY_INVALID', /not a registration key file/),
  );

  // another vault's key, sent to this vault (its URL and CA swapped in): refused as foreign
  const other = await startTestVault(server, t);
  const foreignFile = await other.keyFile();
  const foreign = JSON.parse(await readFile(foreignFile, 'utf8')) as object;
  const mine = JSON.parse(await readFile(newest, 'utf8')) as { vaultUrl: string; vaultCaCertPem: string };
  await writeFile(
    tampered,
    JSON.stringify({ ...foreign, vaultUrl: mine.vaultUrl, vaultCaCertPem: mine.vaultCaCertPem }),
  );
  await assert.rejects(reg(tampered), refusedWith('SECONDSITE_ERR_KEY_FOREIGN', /belongs to another vault/));
  // ...and sent to its own vault's URL with this vault's CA: the TLS check fails first
  await writeFile(tampered, JSON.stringify({ ...foreign, vaultCaCertPem: mine.vaultCaCertPem }));
  await assert.rejects(reg(tampered), refusedWith('SECONDSITE_ERR_UNAUTHORIZED', /certificate/));

  // none of that spent the newest key
  await reg(newest);

  const expiring = await v.keyFile({ expiresInHours: 1 });
  await sql(
    v.databaseUrl,
    "UPDATE registration_keys SET expires_at = now() - interval '1 second' WHERE used_at IS NULL",
  );
  await assert.rejects(reg(expiring, 'ms-b'), refusedWith('SECONDSITE_ERR_KEY_EXPIRED', /expired at/));
});

test('registering a node again replaces its certificate: the old one is refused at once', async (t) => {
  const v = await startTestVault(server, t);
  const first = await v.register('vmm-1');
  const msId = first.identity.registration.managementServerId;
  const oldClient = first.client;
  await oldClient.post(`/v1/management-servers/${msId}/heartbeat`, {});
  const again = await registerProvider({
    dataDir: first.dataDir,
    keyFile: await v.keyFile(),
    managementServerName: 'vmm-1',
    nodeName: 'node-1',
  });
  assert.equal(again.registration.managementServerId, msId, 'the same management server');
  await assert.rejects(
    oldClient.post(`/v1/management-servers/${msId}/heartbeat`, {}),
    refusedWith('SECONDSITE_ERR_UNAUTHORIZED', /replaced by a newer registration/),
  );
  await providerClient(await loadProviderIdentity(first.dataDir)).post(
    `/v1/management-servers/${msId}/heartbeat`,
    {},
  );
  // a certificate of another vault's CA is refused, never taken for a token request
  const other = await startTestVault(server, t);
  const stranger = await other.register('vmm-1');
  const confused = new VaultClient({
    url: v.vault.url,
    caCertPem: v.vault.identity.caCertPem,
    clientCert: { keyPem: stranger.identity.keyPem, certPem: stranger.identity.certPem },
  });
  await assert.rejects(
    confused.post(`/v1/management-servers/${msId}/heartbeat`, {}),
    refusedWith('SECONDSITE_ERR_UNAUTHORIZED', /not issued by this vault/),
  );
});

test('a lost heartbeat raises a Critical alert once; the next heartbeat resolves it', async (t) => {
  // 2 s heartbeats: lost after 6 s, so a loaded machine's slow request is not a lost heartbeat
  const v = await startTestVault(server, t, { heartbeatIntervalSeconds: 2, monitorIntervalMs: 200 });
  const ms = await v.register('vmm-lost');
  const msId = ms.identity.registration.managementServerId;
  const session = new ProviderSession(ms.client, msId, 2, 'test', silentLogger);
  session.start();
  await new Promise((r) => setTimeout(r, 2500));
  const open = (): Promise<AlertView[]> =>
    v.admin.get<{ alerts: AlertView[] }>('/v1/alerts').then((r) => r.alerts);
  assert.deepEqual(await open(), [], 'no alert while heartbeats arrive');
  await session.stop();
  const deadline = Date.now() + 20_000;
  let alerts: AlertView[] = [];
  while (Date.now() < deadline && alerts.length === 0) {
    await new Promise((r) => setTimeout(r, 200));
    alerts = await open();
  }
  assert.equal(alerts.length, 1, 'one alert');
  assert.equal(alerts[0]?.kind, 'management-server-heartbeat-lost');
  assert.equal(alerts[0]?.severity, 'Critical');
  assert.match(alerts[0]?.message ?? '', /vmm-lost sent no heartbeat/);
  assert.equal(
    (await v.admin.get<ManagementServerView>(`/v1/management-servers/${msId}`)).connectionState,
    'disconnected',
  );
  await new Promise((r) => setTimeout(r, 600));
  assert.equal((await open()).length, 1, 'raised once, not once per monitor run');
  await ms.client.post(`/v1/management-servers/${msId}/heartbeat`, {});
  assert.deepEqual(await open(), [], 'resolved by the next heartbeat');
  const all = await v.admin.get<{ alerts: AlertView[] }>('/v1/alerts?all=true');
  assert.ok(all.alerts[0]?.resolvedAt);
});

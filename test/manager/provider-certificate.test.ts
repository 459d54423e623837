/**
 * The management server renews its provider certificate (docs/design/certificate-renewal.md section
 * 4), with a real vault, PostgreSQL and TLS: on demand through the CLI, and by itself once due; the
 * renewed pair is installed on disk (a restart loads it), the vault makes it current at the next
 * heartbeat and refuses the old one; a refused renewal leaves the current certificate working.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { test } from 'node:test';
import pg from 'pg';
import { main } from '../../src/cli/main.js';
import { isSecondsiteError } from '../../src/domain/errors.js';
import type { CertificateView } from '../../src/manager/provider/provider-certificate.js';
import {
  loadProviderIdentity,
  providerClient,
  providerDir,
} from '../../src/manager/provider/provider-registration.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { until } from '../../src/testing/wait/until.js';
import { startTestManager, type TestManager } from './manager-fixtures.js';

const server = useTestPostgres();

async function vaultSql<T>(m: TestManager, text: string, values: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: m.vault.databaseUrl });
  await c.connect();
  try {
    return (await c.query(text, values)).rows as T[];
  } finally {
    await c.end();
  }
}

const currentSerial = async (m: TestManager): Promise<string | undefined> =>
  (await vaultSql<{ cert_serial: string }>(m, 'SELECT cert_serial FROM provider_nodes'))[0]?.cert_serial;

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

test('renew on demand: a new pair on disk, current in the vault at the next heartbeat, the old one refused', async (t) => {
  const m = await startTestManager(server, t);
  const before = m.manager.providerCertificate.show();
  const old = await loadProviderIdentity(m.dataDir);
  const msId = old.registration.managementServerId;
  assert.equal(await currentSerial(m), before.serial);

  const renewed = await cli(['manager', 'certificate', 'renew', '--data-dir', m.dataDir, '--output', 'json']);
  assert.equal(renewed.code, 0, renewed.err);
  const view = JSON.parse(renewed.out) as CertificateView;
  assert.notEqual(view.serial, before.serial);
  assert.ok(view.lastRenewedAt !== null && view.lastError === null);
  // certificates carry whole seconds: a renewal within the second of the registration ends with it
  assert.ok(Date.parse(view.notAfter) >= Date.parse(before.notAfter));

  // on disk: the new pair and nothing else (what a restart loads)
  const loaded = await loadProviderIdentity(m.dataDir);
  assert.equal(new X509Certificate(loaded.certPem).serialNumber.toUpperCase(), view.serial);
  assert.deepEqual((await readdir(providerDir(m.dataDir))).sort(), [
    'provider.crt',
    'provider.key',
    'registration.json',
    'vault-ca.crt',
  ]);
  // the running provider presents it: the vault makes it current, and refuses the old one
  await until('the vault has the new serial', async () =>
    (await currentSerial(m)) === view.serial ? true : undefined,
  );
  await assert.rejects(
    providerClient(old).post(`/v1/management-servers/${msId}/heartbeat`, {}),
    (e: unknown) => isSecondsiteError(e, 'SECONDSITE_ERR_UNAUTHORIZED'),
  );
  await providerClient(loaded).post(`/v1/management-servers/${msId}/heartbeat`, {});
  const heartbeats = m.manager.session.heartbeatsSent;
  await until('heartbeats go on', () =>
    Promise.resolve(m.manager.session.heartbeatsSent > heartbeats + 1 ? true : undefined),
  );
  assert.equal(m.manager.session.lastError, null);

  const shown = await cli(['manager', 'certificate', 'show', '--data-dir', m.dataDir]);
  assert.equal(shown.code, 0, shown.err);
  assert.match(shown.out, new RegExp(`provider certificate ${view.serial}\\n  valid .* to `));
  assert.match(shown.out, /last renewed {4}\d{4}-/);
});

test('the management server renews a due certificate by itself', async (t) => {
  // due 4 s after it was issued: the round (every 200 ms) renews it without anyone asking
  const m = await startTestManager(server, t, {
    certificateCheckIntervalMs: 200,
    certificateRemainingFraction: 1 - 4 / (365 * 86_400),
  });
  const first = m.manager.providerCertificate.show();
  await until('the certificate was renewed', () =>
    Promise.resolve(m.manager.providerCertificate.show().lastRenewedAt ?? undefined),
  );
  const renewed = m.manager.providerCertificate.show();
  assert.notEqual(renewed.serial, first.serial);
  await until('the vault has a renewed serial', async () =>
    (await currentSerial(m)) !== first.serial ? true : undefined,
  );
  assert.equal(m.manager.session.lastError, null);
});

test('a refused renewal keeps the current certificate and says why', async (t) => {
  const m = await startTestManager(server, t);
  const before = m.manager.providerCertificate.show();
  await vaultSql(m, 'DELETE FROM provider_nodes');
  const r = await cli(['manager', 'certificate', 'renew', '--data-dir', m.dataDir]);
  assert.equal(r.code, 2);
  assert.match(r.err, /SECONDSITE_ERR_UNAUTHORIZED: provider node node-1 of ms_\w+ is not registered/);
  const after = m.manager.providerCertificate.show();
  assert.equal(after.serial, before.serial);
  assert.match(after.lastError ?? '', /is not registered/);
  const loaded = await loadProviderIdentity(m.dataDir);
  assert.equal(new X509Certificate(loaded.certPem).serialNumber.toUpperCase(), before.serial);
  assert.deepEqual(
    (await readdir(providerDir(m.dataDir))).filter((f) => f.includes('.next')),
    [],
    'the refused request leaves no pending key',
  );
});

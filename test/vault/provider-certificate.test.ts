/**
 * Provider certificate renewal in the vault (docs/design/certificate-renewal.md section 4), against a
 * real PostgreSQL and real TLS: a renewal is authenticated by the current certificate and signs the
 * caller's own name; the old certificate keeps working until the new one is first presented, then it
 * is refused; a renewal never presented (its answer lost) is replaced by the next one; registering the
 * node again clears it; users and other sites cannot renew.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isSecondsiteError, type ErrorCode } from '../../src/domain/errors.js';
import { registerProvider } from '../../src/manager/provider/provider-registration.js';
import { createKeyAndCsr } from '../../src/pki/csr.js';
import { RegistrationService } from '../../src/vault/registration/registration.service.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { beat, renew, startTestVault } from './vault-fixtures.js';

const server = useTestPostgres();

const refusedWith = (code: ErrorCode, text: RegExp) => (e: unknown) =>
  isSecondsiteError(e, code) && text.test(e.message);

test('a renewed certificate replaces the old one at its first use, not before', async (t) => {
  const v = await startTestVault(server, t);
  const ms = await v.register('vmm-east');
  const msId = ms.identity.registration.managementServerId;
  const { answer, client: renewed } = await renew(
    v,
    ms.client,
    msId,
    'provider.ms_000000000000000000000000.root',
  );
  const cert = new X509Certificate(answer.certPem);
  assert.ok(cert.subject.includes(`CN=provider.${msId}.node-1`), 'the vault names the caller, not the CSR');
  assert.ok(cert.checkIssued(new X509Certificate(v.vault.identity.caCertPem)));
  assert.equal(answer.serial, cert.serialNumber.toUpperCase());
  assert.equal(answer.nodeName, 'node-1');
  const lifetimeDays = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
  assert.equal(Math.round(lifetimeDays), 365);
  await beat(ms.client, msId); // the old one still works: the new one was never presented
  await beat(renewed, msId); // the first use makes it current...
  await assert.rejects(
    beat(ms.client, msId), // ...and the old one is refused from then on
    refusedWith('SECONDSITE_ERR_UNAUTHORIZED', /replaced by a newer registration or renewal/),
  );
  await beat(renewed, msId);
  const view = await v.admin.get<{ nodes: Array<{ certNotAfter: string }> }>(
    `/v1/management-servers/${msId}`,
  );
  assert.equal(Date.parse(view.nodes[0]?.certNotAfter ?? ''), Date.parse(cert.validTo));
  // the renewal is audited under the provider's name
  const audit = await v.admin.get<{ entries: Array<{ action: string; principal: string; outcome: string }> }>(
    '/v1/audit',
  );
  assert.ok(
    audit.entries.some(
      (e) => e.action === 'provider.certificate' && e.principal.includes(msId) && e.outcome === 'ok',
    ),
    JSON.stringify(audit.entries.slice(0, 3)),
  );
});

test('a renewal whose answer was lost is replaced by the next; registering again clears a pending one', async (t) => {
  const v = await startTestVault(server, t);
  const ms = await v.register('vmm-east');
  const msId = ms.identity.registration.managementServerId;
  const lost = await renew(v, ms.client, msId);
  const second = await renew(v, ms.client, msId);
  await assert.rejects(
    beat(lost.client, msId),
    refusedWith('SECONDSITE_ERR_UNAUTHORIZED', /replaced by a newer registration or renewal/),
  );
  await beat(ms.client, msId);
  // registering the node again: neither the old nor the pending certificate works any more
  await registerProvider({
    dataDir: ms.dataDir,
    keyFile: await v.keyFile(),
    managementServerName: 'vmm-east',
    nodeName: 'node-1',
  });
  for (const stale of [ms.client, second.client]) {
    await assert.rejects(beat(stale, msId), refusedWith('SECONDSITE_ERR_UNAUTHORIZED', /replaced/));
  }
});

test('a renewal signed while its certificate was replaced is refused, and leaves no next certificate', async (t) => {
  const v = await startTestVault(server, t);
  const ms = await v.register('vmm-east');
  const msId = ms.identity.registration.managementServerId;
  const stale = new X509Certificate(ms.identity.certPem).serialNumber.toUpperCase();
  // authenticated with `stale`, then the node registered again before the renewal was recorded
  await registerProvider({
    dataDir: ms.dataDir,
    keyFile: await v.keyFile(),
    managementServerName: 'vmm-east',
    nodeName: 'node-1',
  });
  const service = new RegistrationService(v.vault.db, v.vault.identity, () => v.vault.url);
  const dir = await mkdtemp(join(tmpdir(), 'ss-stale-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const csrPem = await createKeyAndCsr(join(dir, 'k.key'), 'x');
  await assert.rejects(
    service.renew(msId, 'node-1', stale, csrPem),
    refusedWith('SECONDSITE_ERR_UNAUTHORIZED', /was replaced while it was signed/),
  );
  const rows = await v.vault.db.query<{ next_cert_serial: string | null }>(
    'SELECT next_cert_serial FROM provider_nodes',
  );
  assert.deepEqual(
    rows.rows.map((r) => r.next_cert_serial),
    [null],
  );
});

test('only a provider renews, only its own node, only with a well-formed request', async (t) => {
  const v = await startTestVault(server, t);
  const east = await v.register('vmm-east');
  const west = await v.register('vmm-west');
  const eastId = east.identity.registration.managementServerId;
  await assert.rejects(renew(v, west.client, eastId), refusedWith('SECONDSITE_ERR_FORBIDDEN', /./));
  await assert.rejects(renew(v, v.admin, eastId), refusedWith('SECONDSITE_ERR_FORBIDDEN', /./));
  await assert.rejects(
    east.client.post(`/v1/management-servers/${eastId}/certificate`, { csrPem: 'not a request' }),
    refusedWith('SECONDSITE_ERR_INVALID_ARGUMENT', /not one PEM-encoded CSR/),
  );
  await beat(east.client, eastId); // nothing changed for east
});

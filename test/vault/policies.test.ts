/**
 * Replication policies through the vault's API against a real PostgreSQL (docs/design/vault.md
 * section 6): create, idempotent and conflicting create, list, show, update (merge, no rename),
 * delete, every validation refusal with its message, the database's own checks, who may write, and
 * the CLI commands (in process, against the same vault).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import pg from 'pg';
import { main } from '../../src/cli/main.js';
import type { VaultClient } from '../../src/manager/provider/vault-client.js';
import type { PolicyView } from '../../src/protocol/vault-api/policies.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { startTestVault, type TestVault } from './vault-fixtures.js';

const server = useTestPostgres();

/**
 * startTestVault with the database dropped after the vault stops: `t.after` hooks run in the order
 * they are registered, and startTestVault's fresh database registers its (forcing) drop before the
 * vault's stop, so a vault query in flight could die with 57P01 and surface in a later test.
 */
async function vaultFor(t: TestContext): Promise<TestVault> {
  const databaseUrl = await server.freshDatabase();
  const v = await startTestVault(server, t, { databaseUrl });
  t.after(() => server.dropDatabase(databaseUrl));
  return v;
}

interface ErrorBody {
  error: { code: string; message: string };
}

async function refused(
  client: VaultClient,
  method: string,
  path: string,
  body: unknown,
): Promise<{ status: number; code: string; message: string }> {
  const res = await client.raw(method, path, body);
  assert.ok(res.status >= 400 && res.status < 500, `${method} ${path}: ${res.status} ${res.text}`);
  const { error } = JSON.parse(res.text) as ErrorBody;
  return { status: res.status, code: error.code, message: error.message };
}

test('create, idempotent create, conflicting create, list, show, update, delete', async (t) => {
  const v = await vaultFor(t);
  const created = await v.admin.raw('POST', '/v1/policies', {
    name: 'gold',
    copyFrequencySeconds: 30,
    retentionHours: 24,
    appConsistentFrequencyHours: 4,
  });
  assert.equal(created.status, 201, created.text);
  const gold = JSON.parse(created.text) as PolicyView;
  assert.deepEqual(
    { ...gold, policyId: '', createdAt: '', updatedAt: '' },
    {
      policyId: '',
      name: 'gold',
      description: '',
      copyFrequencySeconds: 30,
      retentionHours: 24,
      appConsistentFrequencyHours: 4,
      compression: true,
      replicationPort: 8084,
      initialReplicationMethod: 'network',
      offlineExportPath: null,
      offlineImportPath: null,
      initialReplicationStartAt: 'now',
      deleteReplicaOnDisable: false,
      resyncMode: 'automatic',
      resyncWindow: null,
      createdAt: '',
      updatedAt: '',
    },
  );
  assert.match(gold.policyId, /^pol_/);

  // the same settings again (defaults spelled out): 200 and the same policy
  const again = await v.admin.raw('POST', '/v1/policies', {
    name: 'gold',
    copyFrequencySeconds: 30,
    retentionHours: 24,
    appConsistentFrequencyHours: 4,
    compression: true,
    replicationPort: 8084,
  });
  assert.equal(again.status, 200, again.text);
  assert.equal((JSON.parse(again.text) as PolicyView).policyId, gold.policyId);

  // other settings: ALREADY_EXISTS naming the differences
  const conflict = await refused(v.admin, 'POST', '/v1/policies', {
    name: 'gold',
    copyFrequencySeconds: 300,
    compression: false,
  });
  assert.equal(conflict.status, 409);
  assert.equal(conflict.code, 'SECONDSITE_ERR_ALREADY_EXISTS');
  assert.match(
    conflict.message,
    /gold already exists with other settings \(copyFrequencySeconds, appConsistentFrequencyHours, compression\)/,
  );

  const offline = await v.admin.post<PolicyView>('/v1/policies', {
    name: 'archive',
    description: 'seeded by disk',
    copyFrequencySeconds: 0,
    retentionHours: 720,
    appConsistentFrequencyHours: 12,
    compression: false,
    replicationPort: 9000,
    initialReplicationMethod: 'offline',
    offlineExportPath: '/srv/export',
    offlineImportPath: '/srv/import',
    initialReplicationStartAt: '2026-11-23T22:00:00+02:00',
    deleteReplicaOnDisable: true,
    resyncMode: 'window',
    resyncWindow: '22:00-06:00',
  });
  assert.equal(offline.initialReplicationStartAt, '2026-11-23T20:00:00.000Z');
  assert.equal(offline.resyncWindow, '22:00-06:00');
  // idempotence compares normalized settings: the same instant in another zone is the same policy
  const sameInstant = await v.admin.raw('POST', '/v1/policies', {
    ...offline,
    policyId: undefined,
    createdAt: undefined,
    updatedAt: undefined,
    initialReplicationStartAt: '2026-11-23T20:00:00Z',
  });
  assert.equal(sameInstant.status, 200, sameInstant.text);

  const list = await v.admin.get<{ policies: PolicyView[] }>('/v1/policies');
  assert.deepEqual(
    list.policies.map((p) => p.name),
    ['archive', 'gold'],
  );
  assert.deepEqual(await v.admin.get<PolicyView>('/v1/policies/archive'), offline);

  // update: only the fields given change; switching to network and automatic drops paths and window
  const updated = await v.admin.call<PolicyView>('PUT', '/v1/policies/archive', {
    retentionHours: 48,
    initialReplicationMethod: 'network',
    resyncMode: 'automatic',
  });
  assert.equal(updated.retentionHours, 48);
  assert.equal(updated.appConsistentFrequencyHours, 12);
  assert.equal(updated.compression, false);
  assert.equal(updated.offlineExportPath, null);
  assert.equal(updated.resyncWindow, null);
  assert.equal(updated.policyId, offline.policyId);
  assert.ok(updated.updatedAt >= offline.updatedAt);
  // naming the policy itself is fine; renaming is refused
  assert.equal(
    (await v.admin.call<PolicyView>('PUT', '/v1/policies/archive', { name: 'archive', compression: true }))
      .compression,
    true,
  );
  const rename = await refused(v.admin, 'PUT', '/v1/policies/archive', { name: 'platinum' });
  assert.equal(rename.code, 'SECONDSITE_ERR_INVALID_ARGUMENT');
  assert.match(rename.message, /cannot be renamed \(archive -> platinum\)/);
  // an update that breaks a rule across fields is refused, and changes nothing
  const bad = await refused(v.admin, 'PUT', '/v1/policies/archive', { retentionHours: 6 });
  assert.match(bad.message, /app-consistent frequency \(12 h\) must be less than the retention \(6 h\)/);
  assert.equal((await v.admin.get<PolicyView>('/v1/policies/archive')).retentionHours, 48);

  const deleted = await v.admin.delete<{ name: string; deleted: boolean }>('/v1/policies/archive');
  assert.deepEqual(deleted, { name: 'archive', deleted: true });
  const gone = await refused(v.admin, 'GET', '/v1/policies/archive', undefined);
  assert.equal(gone.code, 'SECONDSITE_ERR_NOT_FOUND');
  assert.match(gone.message, /no replication policy archive; list them with 'secondsite vault policy list'/);
  assert.equal((await refused(v.admin, 'DELETE', '/v1/policies/archive', undefined)).status, 404);
  assert.equal((await refused(v.admin, 'PUT', '/v1/policies/archive', { compression: true })).status, 404);

  // the audit log has the writes
  const audit = await v.admin.get<{
    entries: Array<{ action: string; object: string | null; outcome: string }>;
  }>('/v1/audit');
  assert.ok(
    audit.entries.some((e) => e.action === 'policy.write' && e.object === 'archive' && e.outcome === 'ok'),
  );
});

test('every validation rule is refused through the API with its message', async (t) => {
  const v = await vaultFor(t);
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    [
      'copy frequency',
      { copyFrequencySeconds: 60 },
      /copyFrequencySeconds: copy frequency is 30, 300 or 900 seconds/,
    ],
    [
      'retention above 720',
      { retentionHours: 721 },
      /retentionHours: recovery point retention is a whole number of hours from 0 .* to 720/,
    ],
    ['negative retention', { retentionHours: -1 }, /retentionHours: recovery point retention/],
    ['fractional retention', { retentionHours: 1.5 }, /retentionHours: recovery point retention/],
    [
      'app-consistent above 12',
      { appConsistentFrequencyHours: 13, retentionHours: 24 },
      /app-consistent frequency is 0 \(off\) or a whole number of hours from 1 to 12/,
    ],
    [
      'app-consistent not below the retention',
      { appConsistentFrequencyHours: 4, retentionHours: 2 },
      /appConsistentFrequencyHours: app-consistent frequency \(4 h\) must be less than the retention \(2 h\)/,
    ],
    [
      'port 0',
      { replicationPort: 0 },
      /replicationPort: the replication port is a whole number from 1 to 65535/,
    ],
    ['port 65536', { replicationPort: 65536 }, /replicationPort: the replication port/],
    [
      'initial method',
      { initialReplicationMethod: 'tape' },
      /initial replication method is 'network' or 'offline'/,
    ],
    [
      'offline without paths',
      { initialReplicationMethod: 'offline' },
      /offlineExportPath: offline initial replication needs an export path .*offlineImportPath: offline initial replication needs an import path/,
    ],
    [
      'offline with a relative path',
      { initialReplicationMethod: 'offline', offlineExportPath: 'export', offlineImportPath: '/srv/import' },
      /the offline export path 'export' is not an absolute path/,
    ],
    [
      'offline with ..',
      { initialReplicationMethod: 'offline', offlineExportPath: '/srv/e', offlineImportPath: '/srv/../etc' },
      /the offline import path '\/srv\/\.\.\/etc' has an empty, '\.' or '\.\.' segment/,
    ],
    [
      'paths with network',
      { offlineExportPath: '/srv/e' },
      /offlineExportPath is for offline initial replication only/,
    ],
    [
      'start without a zone',
      { initialReplicationStartAt: '2026-11-23T22:00:00' },
      /the initial replication start is 'now' or an ISO 8601 time with a zone/,
    ],
    [
      'start not a time',
      { initialReplicationStartAt: 'tomorrow' },
      /initialReplicationStartAt: the initial replication start/,
    ],
    ['resync mode', { resyncMode: 'sometimes' }, /the resync mode is automatic, manual, window/],
    [
      'window mode without a window',
      { resyncMode: 'window' },
      /resync mode 'window' needs a resync window HH:MM-HH:MM/,
    ],
    [
      'bad window',
      { resyncMode: 'window', resyncWindow: '22:00-6:00' },
      /resync window '22:00-6:00' is not HH:MM-HH:MM in UTC/,
    ],
    [
      'empty window',
      { resyncMode: 'window', resyncWindow: '06:00-06:00' },
      /resync window '06:00-06:00' is empty/,
    ],
    [
      'window without window mode',
      { resyncMode: 'manual', resyncWindow: '22:00-06:00' },
      /a resync window is used only with resync mode 'window', not 'manual'/,
    ],
    [
      'description too long',
      { description: 'x'.repeat(1001) },
      /description: a description is at most 1000 characters/,
    ],
    ['compression not boolean', { compression: 'yes' }, /compression: /],
    ['bad name', { name: 'no spaces please' }, /name: a name is 1-63 letters/],
    ['unknown field', { recoveryPointCount: 3 }, /recoveryPointCount/],
  ];
  const wrong: string[] = [];
  for (const [label, fields, want] of cases) {
    const r = await refused(v.admin, 'POST', '/v1/policies', { name: 'p1', ...fields });
    if (r.status !== 400 || r.code !== 'SECONDSITE_ERR_INVALID_ARGUMENT' || !want.test(r.message))
      wrong.push(`create, ${label}: ${r.status} ${r.code} ${r.message}`);
  }
  // the same rules on update, checked after the merge (the name is the path's)
  await v.admin.post('/v1/policies', { name: 'p1' });
  for (const [label, fields, want] of cases) {
    if (label === 'bad name') continue;
    const r = await refused(v.admin, 'PUT', '/v1/policies/p1', fields);
    if (r.status !== 400 || r.code !== 'SECONDSITE_ERR_INVALID_ARGUMENT' || !want.test(r.message))
      wrong.push(`update, ${label}: ${r.status} ${r.code} ${r.message}`);
  }
  assert.deepEqual(wrong, []);
  assert.deepEqual(
    (await v.admin.get<{ policies: PolicyView[] }>('/v1/policies')).policies.map((p) => p.name),
    ['p1'],
  );
});

test('the table refuses what the API refuses, even from SQL', async (t) => {
  const v = await vaultFor(t);
  const c = new pg.Client({ connectionString: v.databaseUrl });
  await c.connect();
  try {
    const good: Record<string, unknown> = {
      policy_id: 'pol_x',
      name: 'x',
      copy_frequency_seconds: 300,
      retention_hours: 24,
      app_consistent_frequency_hours: 4,
      compression: true,
      replication_port: 8084,
      initial_replication_method: 'network',
      delete_replica_on_disable: false,
      resync_mode: 'automatic',
    };
    const insert = async (over: Record<string, unknown>): Promise<void> => {
      const row = { ...good, ...over };
      const cols = Object.keys(row);
      await c.query(
        `INSERT INTO replication_policies (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
        Object.values(row),
      );
    };
    for (const over of [
      { copy_frequency_seconds: 60 },
      { retention_hours: 721 },
      { retention_hours: 2 }, // app-consistent 4 h is not below it
      { app_consistent_frequency_hours: 13, retention_hours: 0 },
      { replication_port: 0 },
      { initial_replication_method: 'offline' },
      { initial_replication_method: 'offline', offline_export_path: 'rel', offline_import_path: '/i' },
      { offline_export_path: '/e', offline_import_path: '/i' },
      { resync_mode: 'window' },
      { resync_window: '22:00-06:00' },
    ]) {
      await assert.rejects(insert(over), /check constraint/, JSON.stringify(over));
    }
    await insert({});
    await insert({
      policy_id: 'pol_y',
      name: 'y',
      initial_replication_method: 'offline',
      offline_export_path: '/e',
      offline_import_path: '/i',
      resync_mode: 'window',
      resync_window: '22:00-06:00',
    });
    const names = await v.admin.get<{ policies: PolicyView[] }>('/v1/policies');
    assert.deepEqual(
      names.policies.map((p) => p.name),
      ['x', 'y'],
    );
  } finally {
    await c.end();
  }
});

test('only Contributor and Owner write policies; every role reads them; providers do neither', async (t) => {
  const v = await vaultFor(t);
  await v.admin.post('/v1/policies', { name: 'gold' });
  const reader = await v.userClient('Reader');
  const contributor = await v.userClient('Contributor');
  const operator = await v.userClient('Operator');
  assert.equal((await reader.get<PolicyView>('/v1/policies/gold')).name, 'gold');
  for (const [client, who] of [
    [reader, 'Reader'],
    [operator, 'Operator'],
  ] as const) {
    for (const [method, path, body] of [
      ['POST', '/v1/policies', { name: 'silver' }],
      ['PUT', '/v1/policies/gold', { retentionHours: 48 }],
      ['DELETE', '/v1/policies/gold', undefined],
    ] as const) {
      const r = await refused(client, method, path, body);
      assert.equal(r.status, 403, `${who} ${method}`);
      assert.match(r.message, new RegExp(`\\(${who}\\) may not policy.write`));
    }
  }
  assert.equal((await contributor.post<PolicyView>('/v1/policies', { name: 'silver' })).name, 'silver');
  assert.equal(
    (await contributor.call<PolicyView>('PUT', '/v1/policies/gold', { retentionHours: 48 })).retentionHours,
    48,
  );
  const ms = await v.register('site-a');
  assert.equal((await refused(ms.client, 'GET', '/v1/policies', undefined)).status, 403);
  assert.equal((await refused(ms.client, 'POST', '/v1/policies', { name: 'x' })).status, 403);
});

test('CLI: vault policy create, list, show, update, delete, with text and --output json', async (t) => {
  const v = await vaultFor(t);
  const dir = await mkdtemp(join(tmpdir(), 'ss-policy-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const caPath = join(dir, 'ca.crt');
  await writeFile(caPath, v.vault.identity.caCertPem);
  const token = (await readFile(join(v.dataDir, 'admin.token'), 'utf8')).trim();
  const conn = ['--vault', v.vault.url, '--ca', caPath, '--token', token];
  const run = async (...args: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const code = await main(['vault', 'policy', ...args, ...conn], {
      out: (s) => (out += `${s}\n`),
      err: (s) => (err += `${s}\n`),
    });
    return { code, out, err };
  };
  const made = await run(
    'create',
    'gold',
    '--copy-frequency',
    '5m',
    '--retention-hours',
    '24',
    '--app-consistent-frequency',
    '4h',
    '--no-compression',
    '--port',
    '9443',
    '--initial',
    'offline',
    '--export-path',
    '/srv/export',
    '--import-path',
    '/srv/import',
    '--start-at',
    '2026-11-23T22:00:00Z',
    '--delete-replica-on-disable',
    '--resync-window',
    '22:00-06:00',
  );
  assert.equal(made.code, 0, made.err);
  assert.match(made.out, /copy frequency: +5 min/);
  assert.match(made.out, /app-consistent points: +every 4 h/);
  assert.match(
    made.out,
    /initial replication: +offline \(export \/srv\/export, import \/srv\/import\), 2026-11-23T22:00:00.000Z/,
  );
  assert.match(made.out, /resync: +window 22:00-06:00 UTC/);
  const json = await run('show', 'gold', '--output', 'json');
  const shown = JSON.parse(json.out) as PolicyView;
  assert.equal(shown.compression, false);
  assert.equal(shown.replicationPort, 9443);
  assert.equal(shown.deleteReplicaOnDisable, true);
  assert.equal(shown.resyncMode, 'window');

  const refusedRun = await run('create', 'bad', '--retention-hours', '2', '--app-consistent-frequency', '4h');
  assert.equal(refusedRun.code, 2);
  assert.match(refusedRun.err, /app-consistent frequency \(4 h\) must be less than the retention \(2 h\)/);
  const badFreq = await run('create', 'bad', '--copy-frequency', '1h');
  assert.match(badFreq.err, /--copy-frequency '1h' is not a copy frequency; use 30s, 5m, 15m or continuous/);

  const upd = await run(
    'update',
    'gold',
    '--retention-hours',
    '48',
    '--resync',
    'manual',
    '--output',
    'json',
  );
  assert.equal(upd.code, 0, upd.err);
  const after = JSON.parse(upd.out) as PolicyView;
  assert.equal(after.retentionHours, 48);
  assert.equal(after.resyncWindow, null);
  assert.equal(after.replicationPort, 9443);
  assert.match((await run('update', 'gold')).err, /nothing to change/);

  const listed = await run('list');
  assert.match(listed.out, /^POLICY +COPY +RETENTION/);
  assert.match(listed.out, /gold +5 min +48 h +every 4 h +off +offline +manual/);
  assert.match((await run('create', '--help')).out, /--app-consistent-frequency Nh/);

  assert.equal((await run('delete', 'gold')).code, 0);
  assert.deepEqual(JSON.parse((await run('list', '--output', 'json')).out), []);
  assert.match((await run('show', 'gold')).err, /SECONDSITE_ERR_NOT_FOUND: no replication policy gold/);
});

/**
 * The fabric, pairing and mapping commands of the vault CLI end to end (in process, against a vault
 * on the test PostgreSQL with two providers that sent inventories): cloud list/show, host, vm and
 * network lists with --cloud, names typed as SERVER/NAME or a unique NAME (an ambiguous name is
 * refused with the matches), pairing create/list/show/delete, network-mapping and storage-mapping
 * create/list/delete, and --output json.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import type { CloudView, VmView } from '../../src/protocol/vault-api/fabric.schema.js';
import type { PairingView } from '../../src/protocol/vault-api/pairings.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { syntheticInventory } from './fabric-fixtures.js';
import { startTestVault } from './vault-fixtures.js';

const server = useTestPostgres();

test('CLI: clouds, hosts, VMs, networks, pairings and mappings by name', async (t) => {
  const databaseUrl = await server.freshDatabase();
  const v = await startTestVault(server, t, { databaseUrl });
  t.after(() => server.dropDatabase(databaseUrl));
  const dir = await mkdtemp(join(tmpdir(), 'ss-fabric-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const caPath = join(dir, 'ca.crt');
  await writeFile(caPath, v.vault.identity.caCertPem);
  const conn = ['--vault', v.vault.url, '--ca', caPath, '--token', v.adminToken ?? ''];
  const run = async (...args: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const code = await main(['vault', ...args, ...conn], {
      out: (s) => (out += `${s}\n`),
      err: (s) => (err += `${s}\n`),
    });
    return { code, out, err };
  };
  const ok = async (...args: string[]): Promise<string> => {
    const r = await run(...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
    return r.out;
  };

  for (const [name, clouds, classes] of [
    ['vmm-east', ['prod', 'shared'], ['gold', 'silver']],
    ['vmm-west', ['dr', 'shared'], ['dr-gold', 'dr-silver']],
  ] as const) {
    const ms = await v.register(name);
    const id = ms.identity.registration.managementServerId;
    await ms.client.call(
      'PUT',
      `/v1/management-servers/${id}/inventory`,
      syntheticInventory({ version: 1, clouds, classifications: classes }),
    );
  }
  await v.admin.post('/v1/policies', { name: 'gold' });

  const cloudList = await ok('cloud', 'list');
  assert.match(cloudList, /^CLOUD\s+ID\s+STATE\s+HOSTS\s+VMS\s+PAIRING$/m);
  assert.match(cloudList, /^vmm-east\/prod\s+cloud-prod\s+present\s+2\s+4\s+-$/m);
  const json = JSON.parse(await ok('cloud', 'list', '--output', 'json')) as CloudView[];
  assert.equal(json.length, 4);
  assert.match(await ok('cloud', 'show', 'prod'), /^hosts:\s+host-prod-0, host-prod-1$/m);
  assert.match(await ok('cloud', 'show', 'vmm-west/shared'), /^management server:\s+vmm-west \(ms_/m);
  // a name two servers have is ambiguous; an unknown one is not found
  const ambiguous = await run('cloud', 'show', 'shared');
  assert.equal(ambiguous.code, 2);
  assert.match(
    ambiguous.err,
    /cloud name 'shared' is on several management servers \(vmm-east\/shared, vmm-west\/shared\); write SERVER\/NAME/,
  );
  assert.match((await run('cloud', 'show', 'nowhere')).err, /SECONDSITE_ERR_NOT_FOUND: no cloud 'nowhere'/);

  assert.match(
    await ok('host', 'list', '--cloud', 'dr'),
    /^host-dr-0\s+vmm-west\s+connected\s+dr-hosts\s+cloud-dr\s+fast\(dr-gold\) bulk\(dr-silver\)\s+-$/m,
  );
  const vms = JSON.parse(
    await ok('vm', 'list', '--cloud', 'vmm-east/shared', '--output', 'json'),
  ) as VmView[];
  assert.equal(vms.length, 4);
  assert.ok(vms.every((x) => x.cloudName === 'shared' && x.managementServerName === 'vmm-east'));
  assert.match(
    await ok('network', 'list', '--management-server', 'vmm-east'),
    /^vmm-east\/prod-net\s+net-prod\s+present\s+cloud-prod\s+10\.1\.0\.0\/16\s+-$/m,
  );

  // pairing by names
  const made = await ok(
    'pairing',
    'create',
    '--primary-cloud',
    'prod',
    '--recovery-cloud',
    'vmm-west/dr',
    '--policy',
    'gold',
  );
  assert.match(made, /^primary cloud:\s+vmm-east\/prod \(cloud-prod\)$/m);
  assert.match(made, /^recovery cloud:\s+vmm-west\/dr \(cloud-dr\)$/m);
  const again = JSON.parse(
    await ok(
      'pairing',
      'create',
      '--primary-cloud',
      'vmm-east/prod',
      '--recovery-cloud',
      'dr',
      '--policy',
      'gold',
      '--output',
      'json',
    ),
  ) as PairingView;
  const second = await run(
    'pairing',
    'create',
    '--primary-cloud',
    'vmm-east/shared',
    '--recovery-cloud',
    'dr',
    '--policy',
    'gold',
  );
  assert.equal(second.code, 2);
  assert.match(
    second.err,
    /SECONDSITE_ERR_INVALID_STATE: cloud .*\/cloud-dr is already the recovery cloud of pairing/,
  );
  assert.match(
    await ok('pairing', 'list'),
    new RegExp(`^${again.pairingId}\\s+vmm-east/prod\\s+vmm-west/dr\\s+gold$`, 'm'),
  );
  assert.match(
    await ok('cloud', 'list'),
    /^vmm-east\/prod\s+cloud-prod\s+present\s+2\s+4\s+-> vmm-west\/dr \(gold\)$/m,
  );
  assert.match(await ok('pairing', 'show', 'dr'), new RegExp(`^pairing:\\s+${again.pairingId}$`, 'm'));
  const policyDelete = await run('policy', 'delete', 'gold');
  assert.match(
    policyDelete.err,
    /SECONDSITE_ERR_INVALID_STATE: replication policy gold is used by cloud pairing/,
  );

  // mappings by names
  assert.match(
    await ok('network-mapping', 'create', '--source', 'prod-net', '--target', 'dr-net'),
    /^network mapping nmap_\w+: vmm-east\/prod-net -> vmm-west\/dr-net$/m,
  );
  const unpaired = await run(
    'network-mapping',
    'create',
    '--source',
    'vmm-east/shared-net',
    '--target',
    'dr-net',
  );
  assert.match(unpaired.err, /pair its cloud first/);
  assert.match(await ok('network-mapping', 'list'), /^nmap_\w+\s+vmm-east\/prod-net\s+vmm-west\/dr-net$/m);
  assert.match(
    await ok('storage-mapping', 'create', '--source', 'gold', '--target', 'vmm-west/dr-gold'),
    /^storage mapping smap_\w+: vmm-east\/gold -> vmm-west\/dr-gold$/m,
  );
  assert.match(await ok('storage-mapping', 'list'), /^smap_\w+\s+vmm-east\/gold\s+vmm-west\/dr-gold$/m);
  assert.match(
    await ok('storage-classification', 'list'),
    /^vmm-east\/gold\s+present\s+4\s+0\.0 GiB\s+0\.0 GiB\s+ms_\w+\/dr-gold$/m,
  );

  // delete by source names, then the pairing by either cloud
  assert.match(
    await ok('network-mapping', 'delete', 'vmm-east/prod-net'),
    /^network mapping nmap_\w+ deleted$/m,
  );
  assert.match(await ok('storage-mapping', 'delete', 'gold'), /^storage mapping smap_\w+ deleted$/m);
  assert.match(await ok('network-mapping', 'list'), /no network mapping yet/);
  assert.match(
    await ok('pairing', 'delete', 'vmm-west/dr'),
    new RegExp(`^cloud pairing ${again.pairingId} deleted$`, 'm'),
  );
  assert.match(await ok('pairing', 'list'), /no cloud pairing yet/);
  assert.match(await ok('policy', 'delete', 'gold'), /replication policy gold deleted/);
});

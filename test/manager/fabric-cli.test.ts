/**
 * The management server's fabric through `secondsite manager ...` (in process) and its control
 * socket, against a real PostgreSQL: host groups (nested), host move, clouds with capacity, VM
 * networks with subnets and IP pools, storage classifications, and the inventory document; every
 * refusal with a message that says what to fix; idempotent creates.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import type {
  CloudView,
  HostGroupView,
  StorageLocationView,
  VmNetworkView,
} from '../../src/manager/fabric/fabric-api.schema.js';
import { inventorySchema, type Inventory } from '../../src/protocol/vault-api/inventory.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { hostReport, startFabric, type FabricFixture } from './fabric-fixtures.js';
import type { ManagementVmView } from '../../src/manager/fabric/management-vm.js';

const pg = useTestPostgres();

/** Runs a command that must fail with `code`; answers its message. */
async function refused(f: FabricFixture, code: string, ...args: string[]): Promise<string> {
  const r = await f.cli(...args);
  assert.equal(r.code, 2, `manager ${args.join(' ')} should fail: ${r.out}${r.err}`);
  assert.match(r.err, new RegExp(`^error ${code}: `), r.err);
  return r.err;
}

test('host groups, host move and clouds: nesting, capacity, idempotent creates, every refusal', async (t) => {
  const f = await startFabric(pg, t);
  assert.match((await f.cli('host-group', 'list')).out, /no host group yet/);
  assert.equal((await f.cli('host-group', 'create', 'east')).out, 'host group east created\n');
  assert.equal(
    (await f.cli('host-group', 'create', 'east')).out,
    'host group east exists with these settings\n',
  );
  assert.equal((await f.cli('host-group', 'create', 'rack1', '--parent', 'east')).code, 0);
  assert.equal((await f.cli('host-group', 'create', 'west')).code, 0);
  assert.match(
    await refused(f, 'SECONDSITE_ERR_ALREADY_EXISTS', 'host-group', 'create', 'rack1', '--parent', 'west'),
    /host group rack1 exists under east, not under west; choose another name/,
  );
  assert.match(
    await refused(f, 'SECONDSITE_ERR_NOT_FOUND', 'host-group', 'create', 'x', '--parent', 'nowhere'),
    /no host group nowhere; create it with 'secondsite manager host-group create NAME'/,
  );
  assert.match(
    await refused(f, 'SECONDSITE_ERR_INVALID_ARGUMENT', 'host-group', 'create', 'bad name!'),
    /name: a name is 1-63/,
  );

  await f.insertHost('host-a', hostReport('host-a', [{ vmId: 'vm1', networks: ['prod'] }, { vmId: 'vm2' }]));
  await f.insertHost('host-b', hostReport('host-b', [{ vmId: 'vm3', diskBytes: 5 * 1024 ** 3 }]));
  assert.equal(
    (await f.cli('host', 'move', 'host-a', '--host-group', 'rack1')).out,
    'host host-a moved to host group rack1 (cloud none)\n',
  );
  assert.match(
    (await f.cli('host', 'move', 'host-a', '--host-group', 'rack1')).out,
    /is already in host group rack1/,
  );
  assert.match(
    await refused(f, 'SECONDSITE_ERR_NOT_FOUND', 'host', 'move', 'host-z', '--host-group', 'rack1'),
    /no host host-z; list them with 'secondsite manager host list'/,
  );
  assert.match(
    await refused(f, 'SECONDSITE_ERR_NOT_FOUND', 'host', 'move', 'host-a', '--host-group', 'nope'),
    /no host group nope/,
  );
  assert.match(
    await refused(f, 'SECONDSITE_ERR_INVALID_ARGUMENT', 'host', 'move', 'host-a'),
    /--host-group is required/,
  );
  await f.cli('host', 'move', 'host-b', '--host-group', 'west');

  // a cloud over east covers rack1 (nested) and so host-a and its VMs
  const gold = await f.cliJson<CloudView & { created: boolean }>(
    'cloud',
    'create',
    'gold',
    '--host-group',
    'east',
    '--max-vms',
    '10',
    '--memory',
    '64GiB',
    '--storage',
    '2TiB',
  );
  assert.equal(gold.created, true);
  assert.deepEqual(gold.capacity, { vmCount: 10, memoryBytes: 64 * 1024 ** 3, storageBytes: 2 * 1024 ** 4 });
  assert.deepEqual(gold.usage, { hosts: ['host-a'], vmCount: 2, storageBytes: 20 * 1024 ** 3 });
  const again = await f.cliJson<CloudView & { created: boolean }>(
    'cloud',
    'create',
    'gold',
    '--host-group',
    'east',
    '--max-vms',
    '10',
    '--memory',
    '64GiB',
    '--storage',
    '2TiB',
  );
  assert.equal(again.created, false);
  assert.equal(again.cloudId, gold.cloudId);
  assert.match(
    await refused(
      f,
      'SECONDSITE_ERR_ALREADY_EXISTS',
      'cloud',
      'create',
      'gold',
      '--host-group',
      'east',
      '--max-vms',
      '20',
    ),
    /cloud gold exists with host groups east and max VMs 10, memory 64\.0 GiB, storage 2\.0 TiB \(asked: host groups east and max VMs 20, memory unlimited, storage unlimited\)/,
  );
  // capacity is compared exactly (64 GiB and one byte is another setting), in any unit
  const sameInMiB = await f.cliJson<CloudView & { created: boolean }>(
    'cloud',
    'create',
    'gold',
    '--host-group',
    'east',
    '--max-vms',
    '10',
    '--memory',
    '65536MiB',
    '--storage',
    '2048GiB',
  );
  assert.equal(sameInMiB.created, false);
  await refused(
    f,
    'SECONDSITE_ERR_ALREADY_EXISTS',
    'cloud',
    'create',
    'gold',
    '--host-group',
    'east',
    '--max-vms',
    '10',
    '--memory',
    String(64 * 1024 ** 3 + 1),
    '--storage',
    '2TiB',
  );
  assert.match(
    await refused(f, 'SECONDSITE_ERR_INVALID_STATE', 'cloud', 'create', 'silver', '--host-group', 'rack1'),
    /host group rack1 overlaps host group east of cloud gold \(one is nested in the other\); a host group belongs to one cloud at most/,
  );
  assert.match(
    await refused(f, 'SECONDSITE_ERR_INVALID_STATE', 'cloud', 'create', 'silver', '--host-group', 'east'),
    /host group east is in cloud gold/,
  );
  assert.match(
    await refused(
      f,
      'SECONDSITE_ERR_NOT_FOUND',
      'cloud',
      'create',
      'silver',
      '--host-group',
      'west',
      '--host-group',
      'north',
    ),
    /no host group north/,
  );
  assert.match(
    await refused(f, 'SECONDSITE_ERR_INVALID_ARGUMENT', 'cloud', 'create', 'silver'),
    /--host-group is required/,
  );
  assert.match(
    await refused(
      f,
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      'cloud',
      'create',
      'silver',
      '--host-group',
      'west',
      '--memory',
      'lots',
    ),
    /--memory 'lots' is not a size; use bytes or a suffix/,
  );
  assert.match(
    await refused(
      f,
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      'cloud',
      'create',
      'silver',
      '--host-group',
      'west',
      '--max-vms',
      'many',
    ),
    /--max-vms must be a whole number/,
  );
  assert.equal((await f.cli('cloud', 'create', 'silver', '--host-group', 'west')).code, 0);

  const list = (await f.cli('cloud', 'list')).out;
  assert.match(list, /^CLOUD\s+HOST GROUPS\s+MAX VMS/);
  assert.match(list, /gold\s+east\s+10\s+64\.0 GiB\s+2\.0 TiB\s+1\s+2/);
  assert.match(list, /silver\s+west\s+unlimited\s+unlimited\s+unlimited\s+1\s+1/);
  const show = (await f.cli('cloud', 'show', 'gold')).out;
  assert.match(show, /hosts:\s+host-a/);
  assert.match(show, /VMs:\s+2/);
  assert.match(
    await refused(f, 'SECONDSITE_ERR_NOT_FOUND', 'cloud', 'show', 'bronze'),
    /no cloud bronze; list them with 'secondsite manager cloud list'/,
  );

  const groups = await f.cliJson<HostGroupView[]>('host-group', 'list');
  assert.deepEqual(
    groups.map((g) => [g.name, g.parent, g.cloud, g.hosts]),
    [
      ['east', null, 'gold', []],
      ['rack1', 'east', 'gold', ['host-a']],
      ['west', null, 'silver', ['host-b']],
    ],
  );
  assert.match(
    await refused(f, 'SECONDSITE_ERR_INVALID_STATE', 'host-group', 'delete', 'east'),
    /host group east is used by cloud gold; delete the cloud first/,
  );
  assert.equal((await f.cli('cloud', 'delete', 'gold')).out, 'cloud gold deleted\n');
  assert.match(
    await refused(f, 'SECONDSITE_ERR_INVALID_STATE', 'host-group', 'delete', 'east'),
    /host group east holds host group rack1; delete those first/,
  );
  assert.match(
    await refused(f, 'SECONDSITE_ERR_INVALID_STATE', 'host-group', 'delete', 'rack1'),
    /host group rack1 holds host host-a; move them first \('secondsite manager host move HOST --host-group OTHER'\)/,
  );
  await f.cli('host', 'move', 'host-a', '--host-group', 'east');
  assert.equal((await f.cli('host-group', 'delete', 'rack1')).out, 'host group rack1 deleted\n');
  assert.match(
    await refused(f, 'SECONDSITE_ERR_NOT_FOUND', 'host-group', 'delete', 'rack1'),
    /no host group rack1/,
  );
  assert.match(await refused(f, 'SECONDSITE_ERR_NOT_FOUND', 'cloud', 'delete', 'gold'), /no cloud gold/);
});

test('VM networks: subnet, gateway and IP pools checked with messages that say what to fix; delete refused while NICs use it', async (t) => {
  const f = await startFabric(pg, t);
  await f.cli('host-group', 'create', 'east');
  await f.cli('cloud', 'create', 'gold', '--host-group', 'east');
  await f.cli('host-group', 'create', 'devs');
  assert.equal((await f.cli('cloud', 'create', 'dev', '--host-group', 'devs')).code, 0);
  await f.insertHost('host-a', hostReport('host-a', [{ vmId: 'vm1', networks: ['prod'] }]));
  const create = ['vm-network', 'create', 'prod', '--cloud', 'gold', '--subnet', '10.1.0.0/24'];
  const prod = await f.cliJson<VmNetworkView & { created: boolean }>(
    ...create,
    '--gateway',
    '10.1.0.1',
    '--ip-pool',
    '10.1.0.100-10.1.0.199',
    '--ip-pool',
    '10.1.0.200-10.1.0.250',
  );
  assert.equal(prod.created, true);
  assert.deepEqual(prod.clouds, ['gold']);
  assert.deepEqual(prod.subnets, [
    {
      cidr: '10.1.0.0/24',
      gateway: '10.1.0.1',
      ipPools: [
        { name: 'pool-1', rangeStart: '10.1.0.100', rangeEnd: '10.1.0.199' },
        { name: 'pool-2', rangeStart: '10.1.0.200', rangeEnd: '10.1.0.250' },
      ],
    },
  ]);
  const same = await f.cliJson<VmNetworkView & { created: boolean }>(
    ...create,
    '--gateway',
    '10.1.0.1',
    '--ip-pool',
    '10.1.0.200-10.1.0.250',
    '--ip-pool',
    '10.1.0.100-10.1.0.199',
  );
  assert.equal(same.created, false, 'the same pools in another order are the same settings');
  assert.match(
    await refused(f, 'SECONDSITE_ERR_ALREADY_EXISTS', ...create, '--gateway', '10.1.0.254'),
    /VM network prod exists in cloud gold with subnet 10\.1\.0\.0\/24 gateway 10\.1\.0\.1 pool pool-1 10\.1\.0\.100-10\.1\.0\.199 pool pool-2 10\.1\.0\.200-10\.1\.0\.250 \(asked: cloud gold with subnet 10\.1\.0\.0\/24 gateway 10\.1\.0\.254\)/,
  );

  const other = ['vm-network', 'create', 'test', '--cloud', 'gold'];
  const cases: [string[], string, RegExp][] = [
    [
      [
        ...other,
        '--subnet',
        '10.2.0.0/24',
        '--ip-pool',
        '10.2.0.10-10.2.0.50',
        '--ip-pool',
        '10.2.0.40-10.2.0.60',
      ],
      'INVALID_ARGUMENT',
      /IP pools 10\.2\.0\.10-10\.2\.0\.50 and 10\.2\.0\.40-10\.2\.0\.60 overlap; give each address to one pool/,
    ],
    [
      [...other, '--subnet', '10.2.0.0/24', '--ip-pool', '10.3.0.10-10.3.0.50'],
      'INVALID_ARGUMENT',
      /IP pool 10\.3\.0\.10-10\.3\.0\.50 is not inside subnet 10\.2\.0\.0\/24 \(its host addresses are 10\.2\.0\.1-10\.2\.0\.254\); choose a range inside it/,
    ],
    [
      [...other, '--subnet', '10.2.0.0/24', '--gateway', '10.9.0.1'],
      'INVALID_ARGUMENT',
      /gateway 10\.9\.0\.1 is not a host address of subnet 10\.2\.0\.0\/24/,
    ],
    [
      [...other, '--subnet', '10.2.0.0/24', '--gateway', '10.2.0.20', '--ip-pool', '10.2.0.10-10.2.0.50'],
      'INVALID_ARGUMENT',
      /IP pool 10\.2\.0\.10-10\.2\.0\.50 holds the gateway 10\.2\.0\.20; leave the gateway out of it/,
    ],
    [
      [...other, '--subnet', '10.2.0.7/24'],
      'INVALID_ARGUMENT',
      /'10\.2\.0\.7\/24' has host bits set; the subnet is 10\.2\.0\.0\/24/,
    ],
    [
      [...other, '--subnet', '10.2.0.0/24', '--ip-pool', '10.2.0.10'],
      'INVALID_ARGUMENT',
      /--ip-pool '10\.2\.0\.10' is not START-END/,
    ],
    [
      [...other, '--subnet', '10.2.0.0/24', '--ip-pool', '10.2.0.50-10.2.0.10'],
      'INVALID_ARGUMENT',
      /ends before it starts/,
    ],
    [
      ['vm-network', 'create', 'test', '--cloud', 'bronze', '--subnet', '10.2.0.0/24'],
      'NOT_FOUND',
      /no cloud bronze; create it with 'secondsite manager cloud create NAME --host-group G'/,
    ],
    [['vm-network', 'create', 'test', '--subnet', '10.2.0.0/24'], 'INVALID_ARGUMENT', /--cloud is required/],
    [[...other], 'INVALID_ARGUMENT', /--subnet is required/],
  ];
  for (const [args, code, message] of cases) {
    assert.match(await refused(f, `SECONDSITE_ERR_${code}`, ...args), message, args.join(' '));
  }
  // the API takes several subnets; they may not overlap
  const { ControlClient } = await import('../../src/control-api/control-client.js');
  const { managerControlSocket } = await import('../../src/manager/manager-server.js');
  const api = new ControlClient(managerControlSocket(f.dataDir));
  await assert.rejects(
    api.post('/v1/vm-networks', {
      name: 'multi',
      clouds: ['gold'],
      subnets: [{ cidr: '10.4.0.0/16' }, { cidr: '10.4.1.0/24' }],
    }),
    /subnets 10\.4\.0\.0\/16 and 10\.4\.1\.0\/24 overlap/,
  );
  await assert.rejects(
    api.post('/v1/vm-networks', { name: 'x', clouds: ['gold'], subnets: [], extra: 1 }),
    /Unrecognized key/,
  );

  await f.cli(
    'vm-network',
    'create',
    'lab',
    '--cloud',
    'gold',
    '--cloud',
    'dev',
    '--subnet',
    '192.168.0.0/16',
  );
  const listed = (await f.cli('vm-network', 'list')).out;
  assert.match(listed, /lab\s+dev,gold\s+192\.168\.0\.0\/16\s+-\s+-/);
  assert.match(
    listed,
    /prod\s+gold\s+10\.1\.0\.0\/24\s+10\.1\.0\.1\s+10\.1\.0\.100-10\.1\.0\.199,10\.1\.0\.200-10\.1\.0\.250/,
  );
  assert.match(
    await refused(f, 'SECONDSITE_ERR_INVALID_STATE', 'vm-network', 'delete', 'prod'),
    /VM network prod is used by the NICs of VM vm1 on host-a; connect them to another network or remove them first/,
  );
  // a cloud's deletion leaves its networks, no longer available in it
  await f.cli('cloud', 'delete', 'dev');
  assert.deepEqual((await f.cliJson<VmNetworkView>('vm-network', 'show', 'lab')).clouds, ['gold']);
  assert.equal((await f.cli('vm-network', 'delete', 'lab')).out, 'VM network lab deleted\n');
  assert.match(
    await refused(f, 'SECONDSITE_ERR_NOT_FOUND', 'vm-network', 'show', 'lab'),
    /no VM network lab/,
  );
});

test('storage classifications, and the inventory as the vault will get it (placement through nested host groups)', async (t) => {
  const f = await startFabric(pg, t);
  await f.cli('host-group', 'create', 'all-hosts');
  await f.cli('host-group', 'create', 'east', '--parent', 'all-hosts');
  await f.cli('host-group', 'create', 'east-rack1', '--parent', 'east');
  await f.cli('host-group', 'create', 'lab', '--parent', 'all-hosts');
  await f.cli('cloud', 'create', 'gold', '--host-group', 'east');
  await f.cli(
    'vm-network',
    'create',
    'prod',
    '--cloud',
    'gold',
    '--subnet',
    '10.1.0.0/24',
    '--ip-pool',
    '10.1.0.10-10.1.0.99',
  );
  await f.insertHost(
    'host-a',
    hostReport(
      'host-a',
      [
        { vmId: 'vm1', networks: ['prod', 'backup'] },
        { vmId: 'vm2', state: 'off', networks: ['prod'], ipv4: 'none' },
      ],
      ['replicas', 'fast'],
    ),
  );
  await f.insertHost('host-b', hostReport('host-b', [{ vmId: 'vm3' }]));
  await f.insertHost('host-c', null);
  await f.cli('host', 'move', 'host-a', '--host-group', 'east-rack1');
  await f.cli('host', 'move', 'host-b', '--host-group', 'lab');
  await f.db.query("UPDATE hosts SET connection_state = 'disconnected' WHERE host_id = 'host-b'");

  assert.match(
    await refused(
      f,
      'SECONDSITE_ERR_NOT_FOUND',
      'storage',
      'classify',
      '--host',
      'host-a',
      '--location',
      'slow',
      '--classification',
      'Gold',
    ),
    /host host-a has no storage location slow; it reports replicas, fast/,
  );
  assert.match(
    await refused(
      f,
      'SECONDSITE_ERR_NOT_FOUND',
      'storage',
      'classify',
      '--host',
      'host-c',
      '--location',
      'replicas',
      '--classification',
      'Gold',
    ),
    /host host-c has not reported its storage locations yet/,
  );
  assert.match(
    await refused(
      f,
      'SECONDSITE_ERR_NOT_FOUND',
      'storage',
      'classify',
      '--host',
      'host-x',
      '--location',
      'replicas',
      '--classification',
      'Gold',
    ),
    /no host host-x/,
  );
  assert.match(
    await refused(
      f,
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      'storage',
      'classify',
      '--host',
      'host-a',
      '--location',
      'replicas',
      '--classification',
      'Gold Plus',
    ),
    /classification: a name is/,
  );
  assert.equal(
    (
      await f.cli(
        'storage',
        'classify',
        '--host',
        'host-a',
        '--location',
        'replicas',
        '--classification',
        'Gold',
      )
    ).out,
    'storage location replicas of host host-a is Gold\n',
  );
  await f.cli(
    'storage',
    'classify',
    '--host',
    'host-a',
    '--location',
    'fast',
    '--classification',
    'Platinum',
  );
  await f.cli('storage', 'unclassify', '--host', 'host-a', '--location', 'fast');
  const locations = await f.cliJson<StorageLocationView[]>('storage', 'list');
  assert.deepEqual(
    locations.map((l) => [l.hostId, l.location, l.classification]),
    [
      ['host-a', 'replicas', 'Gold'],
      ['host-a', 'fast', null],
      ['host-b', 'replicas', null],
    ],
  );

  const json = await f.cliJson<Inventory>('inventory');
  const inv = inventorySchema.parse(json);
  assert.equal(inv.inventoryVersion, await f.version());
  assert.match(inv.siteCaCertPem, /^-----BEGIN CERTIFICATE-----/);
  const groupId = (name: string): string | undefined =>
    inv.hostGroups.find((g) => g.name === name)?.hostGroupId;
  assert.equal(inv.hostGroups.find((g) => g.name === 'east-rack1')?.parentHostGroupId, groupId('east'));
  const gold = inv.clouds.find((c) => c.name === 'gold');
  assert.ok(gold);
  assert.deepEqual(gold.hostGroupIds, [groupId('east')]);
  const prod = inv.vmNetworks.find((n) => n.name === 'prod');
  assert.ok(prod);
  assert.deepEqual(prod.cloudIds, [gold.cloudId]);
  assert.match(prod.subnets[0]?.ipPools[0]?.ipPoolId ?? '', /^ippool-/);
  const vm = (id: string) => inv.vms.find((v) => v.vmId === id);
  // vm1: host-a in east-rack1, nested under east, which gold covers
  assert.deepEqual(vm('vm1'), {
    vmId: 'vm1',
    name: 'vm1 display name',
    hostId: 'host-a',
    cloudId: gold.cloudId,
    powerState: 'running',
    disks: [{ diskId: 'vm1-d0', sizeBytes: 10 * 1024 ** 3 }],
    nics: [
      { nicId: 'nic0', vmNetworkId: prod.vmNetworkId, ipAddress: '10.1.0.10' },
      { nicId: 'nic1', vmNetworkId: null, ipAddress: '10.1.0.11' },
    ],
  });
  assert.deepEqual([vm('vm2')?.powerState, vm('vm2')?.nics[0]?.ipAddress], ['off', null]);
  // vm3: host-b in lab (no cloud), disconnected: its last state read is stale
  assert.deepEqual([vm('vm3')?.cloudId, vm('vm3')?.powerState], [null, 'unknown']);
  const host = (id: string) => inv.hosts.find((h) => h.hostId === id);
  assert.deepEqual(
    host('host-a')?.storageLocations.map((s) => [s.name, s.storageClassification]),
    [
      ['replicas', 'Gold'],
      ['fast', ''],
    ],
  );
  assert.equal(host('host-a')?.hostGroupId, groupId('east-rack1'));
  assert.deepEqual(
    [host('host-b')?.connectionState, host('host-c')?.memoryBytes, host('host-c')?.hostGroupId],
    ['disconnected', 0, null],
  );

  const text = (await f.cli('inventory')).out;
  assert.match(
    text,
    /^inventory version \d+: 4 host groups, 3 hosts \(1 connected\), 1 clouds, 1 VM networks, 3 VMs/,
  );
  assert.match(text, /vm1\s+host-a\s+gold\s+running\s+10\.0 GiB\s+nic0:prod,nic1:\(no VM network\)/);

  assert.match(
    await refused(f, 'SECONDSITE_ERR_INVALID_STATE', 'inventory', 'sync'),
    /no session with a vault; register it first/,
  );
  assert.match(
    await refused(f, 'SECONDSITE_ERR_INVALID_STATE', 'inventory', 'status'),
    /no session with a vault; register it first/,
  );
});

test('a management server that does not run: the CLI says how to start it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ss-nomanager-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  let err = '';
  const code = await main(['manager', 'cloud', 'list', '--data-dir', dir], {
    out: () => {},
    err: (s) => (err += s),
  });
  assert.equal(code, 2);
  assert.match(
    err,
    /SECONDSITE_ERR_CONNECTION_LOST: the management server is not running \(no answer on .*manager\.sock\); start it with 'secondsite manager serve --data-dir /,
  );
});

test("the management server's VM: set through the CLI, carried in the inventory, cleared", async (t) => {
  const f = await startFabric(pg, t);
  await f.insertHost('h1', null);
  const before = await f.version();
  const set = await f.cliJson<ManagementVmView>('management-vm', 'set', 'h1/vmm');
  assert.deepEqual(set.managementVm, { hostId: 'h1', vmId: 'vmm' });
  assert.ok((await f.version()) > before, 'the inventory version moves');
  const inv = await f.cliJson<{ managementVm: unknown }>('inventory');
  assert.deepEqual(inv.managementVm, { hostId: 'h1', vmId: 'vmm' });
  const unknown = await f.cli('management-vm', 'set', 'h9/vmm');
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.err, /host h9 is not enrolled/);
  const bad = await f.cli('management-vm', 'set', 'vmm');
  assert.match(bad.err, /give HOST\/VM/);
  assert.deepEqual((await f.cliJson<ManagementVmView>('management-vm', 'clear')).managementVm, null);
  assert.match((await f.cli('management-vm', 'show')).out, /no management server VM is set/);
});

/**
 * The fabric over a real enrolled host: a host agent (real process) enrolled into a management server
 * (this process), a VM made on it with a NIC on network `prod`; the fabric described through the CLI
 * places the host's VM in its cloud, its NIC on the VM network of that name, and classifies the
 * storage location the host reports. The inventory built from what the host poller stored passes the
 * vault's schema.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { inventorySchema, type Inventory } from '../../src/protocol/vault-api/inventory.schema.js';
import { registerChildCleanup, spawnSecondsite } from '../../src/testing/process/child-process.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { freePort, startTestManager } from './manager-fixtures.js';

registerChildCleanup();
const pg = useTestPostgres();
const bin = new URL('../../bin/secondsite.mjs', import.meta.url).pathname;

function child(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [bin, ...args], { encoding: 'utf8' }, (error, stdout, stderr) =>
      error ? reject(new Error(`secondsite ${args.join(' ')}: ${stderr}`)) : resolve(stdout),
    );
  });
}

test("a real host's VM lands in its cloud, its NIC on the VM network of its name", async (t) => {
  const { dataDir: msDir } = await startTestManager(pg, t, { hostPollIntervalMs: 300 });
  const dir = await mkdtemp(join(tmpdir(), 'ss-fabric-host-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const hostDir = join(dir, 'host-a');
  const keyPath = join(dir, 'host-a.key.json');
  const manager = async (...args: string[]): Promise<string> => {
    let out = '';
    let err = '';
    const code = await main(['manager', ...args, '--data-dir', msDir], {
      out: (s) => (out += s),
      err: (s) => (err += s),
    });
    assert.equal(code, 0, `manager ${args.join(' ')}: ${err}`);
    return out;
  };

  await manager('host', 'enroll-key', '--out', keyPath);
  const port = await freePort();
  await child(
    'host',
    'init',
    '--host-id',
    'host-a',
    '--state-dir',
    hostDir,
    '--replication-port',
    String(port),
  );
  await child('host', 'enroll', '--state-dir', hostDir, '--key', keyPath);
  const agent = spawnSecondsite(['host', 'serve', '--state-dir', hostDir], { name: 'host-a agent' });
  await agent.waitForReady();
  await child('host', 'disk', 'create', 'vm1-d0', '--size', '64M', '--state-dir', hostDir);
  await child(
    'host',
    'vm',
    'create',
    'vm1',
    '--disks',
    'vm1-d0',
    '--nic',
    'nic0:prod:10.0.0.5:0',
    '--state-dir',
    hostDir,
  );

  await manager('host-group', 'create', 'east');
  await manager('host', 'move', 'host-a', '--host-group', 'east');
  await manager('cloud', 'create', 'gold', '--host-group', 'east');
  await manager('vm-network', 'create', 'prod', '--cloud', 'gold', '--subnet', '10.0.0.0/24');

  const deadline = Date.now() + 30_000;
  let inv: Inventory | undefined;
  for (;;) {
    await manager('host', 'refresh');
    inv = inventorySchema.parse(JSON.parse(await manager('inventory', '--output', 'json')));
    if (inv.vms.length > 0 && inv.hosts[0]?.connectionState === 'connected') break;
    assert.ok(Date.now() < deadline, `host-a's VM never reached the inventory: ${JSON.stringify(inv)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  const location = inv.hosts[0]?.storageLocations[0]?.name;
  assert.ok(location, 'the host reports a storage location');
  await manager(
    'storage',
    'classify',
    '--host',
    'host-a',
    '--location',
    location,
    '--classification',
    'Gold',
  );
  inv = inventorySchema.parse(JSON.parse(await manager('inventory', '--output', 'json')));
  const gold = inv.clouds.find((c) => c.name === 'gold');
  const prod = inv.vmNetworks.find((n) => n.name === 'prod');
  assert.ok(gold && prod);
  assert.deepEqual(inv.vms, [
    {
      vmId: 'vm1',
      name: 'vm1',
      hostId: 'host-a',
      cloudId: gold.cloudId,
      powerState: 'off',
      disks: [{ diskId: 'vm1-d0', sizeBytes: 64 * 1024 * 1024 }],
      nics: [{ nicId: 'nic0', vmNetworkId: prod.vmNetworkId, ipAddress: '10.0.0.5' }],
    },
  ]);
  assert.equal(inv.hosts[0]?.storageLocations[0]?.storageClassification, 'Gold');
  assert.equal(inv.hosts[0]?.replicationPort, port);
  assert.match(await manager('cloud', 'show', 'gold'), /hosts:\s+host-a\nVMs:\s+1/);
});

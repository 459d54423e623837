/**
 * The inventory version (manager migration 0005): it moves on every change of a fabric table
 * (host groups, hosts, clouds, VM networks and their subnets and pools, storage classifications), and
 * not otherwise: not on reads, not on an update that writes the same values, not when the host poller
 * only records a contact time or an error, not on a refused change, not when a storage location's free
 * space moved within its step of max(1 GiB, 1 % of its capacity).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { hostReport, startFabric } from './fabric-fixtures.js';

const pg = useTestPostgres();

test('the inventory version moves on each fabric change and not otherwise', async (t) => {
  const f = await startFabric(pg, t);
  let last = await f.version();
  assert.ok(last >= Date.now() - 3_600_000, `the first version is the clock in ms (${last})`);
  const moved = async (what: string): Promise<void> => {
    const v = await f.version();
    assert.ok(v > last, `${what}: the version should move (${last} -> ${v})`);
    last = v;
  };
  const still = async (what: string): Promise<void> => {
    assert.equal(await f.version(), last, `${what}: the version should not move`);
  };

  await f.fabric.hostGroups.create('east', null);
  await moved('host group created');
  await f.fabric.hostGroups.create('east', null);
  await still('same host group created again');
  await f.fabric.hostGroups.create('rack1', 'east');
  await moved('nested host group created');
  await f.fabric.hostGroups.list();
  await f.fabric.inventory.document();
  await still('reads');

  await f.insertHost('host-a', hostReport('host-a', [{ vmId: 'vm1', networks: ['prod'] }]));
  await moved('host enrolled');
  await f.fabric.hostGroups.moveHost('host-a', 'rack1');
  await moved('host moved');
  await f.fabric.hostGroups.moveHost('host-a', 'rack1');
  await still('host moved to its own group');

  // the host poller: contact time and errors are not inventory; state and report are
  await f.db.query(
    "UPDATE hosts SET last_contact_at = now(), last_error = 'timeout' WHERE host_id = 'host-a'",
  );
  await still('contact time and error recorded');
  await f.db.query('UPDATE hosts SET host_inventory = host_inventory WHERE true');
  await still('the same report written again');
  await f.db.query("UPDATE hosts SET connection_state = 'disconnected' WHERE host_id = 'host-a'");
  await moved('host disconnected');
  await f.db.query("UPDATE hosts SET connection_state = 'disconnected' WHERE host_id = 'nobody'");
  await still('an update of no row');
  await f.db.query('UPDATE hosts SET host_inventory = $1', [
    hostReport('host-a', [{ vmId: 'vm1', networks: ['prod'] }, { vmId: 'vm2' }]),
  ]);
  await moved('a VM appeared in the report');
  // free space moves with every replica write: it counts in steps of max(1 GiB, 1 % of capacity)
  const withFree = async (freeBytes: number): Promise<void> => {
    await f.db.query(
      `UPDATE hosts SET host_inventory = jsonb_set(host_inventory, '{storageLocations,0,freeBytes}', to_jsonb($1::bigint))`,
      [Math.round(freeBytes)],
    );
  };
  const capacity = 2 * 1024 ** 4; // hostReport's locations: 2 TiB, 1 TiB free
  const step = capacity / 100; // 20.48 GiB
  const free = 1024 ** 4 - (1024 ** 4 % step) + step / 2; // in the middle of a step
  await withFree(free);
  await moved('free space into another step');
  await withFree(free - step / 4);
  await still('free space moved a quarter step, within its step');
  await withFree(free - step / 2 + 1);
  await still('another small move within the step');
  await withFree(free - step / 2 - 1);
  await moved('the small moves added up to another step');
  await f.db.query(
    `UPDATE hosts SET host_inventory = jsonb_set(host_inventory, '{storageLocations,0,capacityBytes}', to_jsonb($1::bigint))`,
    [capacity * 2],
  );
  await moved('a location grew');

  await f.fabric.clouds.create('gold', ['east'], { vmCount: 10, memoryBytes: null, storageBytes: null });
  await moved('cloud created');
  await f.fabric.clouds.create('gold', ['east'], { vmCount: 10, memoryBytes: null, storageBytes: null });
  await still('same cloud created again');
  await assert.rejects(
    f.fabric.clouds.create('silver', ['rack1'], { vmCount: null, memoryBytes: null, storageBytes: null }),
  );
  await still('a refused cloud');

  await f.fabric.vmNetworks.create(
    'prod',
    ['gold'],
    [{ cidr: '10.1.0.0/24', gateway: '10.1.0.1', ipPools: [] }],
  );
  await moved('VM network created');
  await assert.rejects(
    f.fabric.vmNetworks.create('bad', ['gold'], [{ cidr: '10.1.0.0/24', gateway: '10.2.0.1' }]),
  );
  await still('a refused VM network');

  await f.fabric.storage.classify('host-a', 'replicas', 'Gold');
  await moved('storage classified');
  await f.fabric.storage.classify('host-a', 'replicas', 'Gold');
  await still('same classification again');
  await f.fabric.storage.classify('host-a', 'replicas', 'Silver');
  await moved('classification changed');

  await f.db.query('DELETE FROM vm_network_ip_pools');
  await still('a delete of no row');
  await f.db.query("DELETE FROM hosts WHERE host_id = 'host-a'");
  await moved('host removed');
  await f.fabric.vmNetworks.delete('prod');
  await moved('VM network deleted');
  await f.fabric.clouds.delete('gold');
  await moved('cloud deleted');
  await f.fabric.hostGroups.delete('rack1');
  await moved('host group deleted');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { placeReplica, type PlacementHost, type PlacementInput } from './replica-placement.js';

const GiB = 1024 ** 3;
const h = (hostId: string, free: number[], items = 0, connected = true, cls = 'Gold'): PlacementHost => ({
  hostId,
  connected,
  replicatedItems: items,
  storageLocations: free.map((f, i) => ({ name: `loc${i}`, storageClassification: cls, freeBytes: f * GiB })),
});
const base: PlacementInput = {
  vm: { vmId: 'vm1', diskBytes: 10 * GiB, nicNetworks: [{ nicId: 'nic0', vmNetworkId: 'net-prod' }] },
  hosts: [h('b1', [50]), h('b2', [80])],
  networkMappings: new Map([['net-prod', 'net-dr']]),
  recoveryNetworks: new Set(['net-dr']),
  allowedClassifications: null,
  cloud: { vmCount: null, storageBytes: null, usedVmCount: 0, usedStorageBytes: 0 },
};

test('the host with the fewest items wins, then the most free space, then the id', () => {
  assert.deepEqual(placeReplica(base), { ok: true, hostId: 'b2', storageLocation: 'loc0' });
  assert.deepEqual(placeReplica({ ...base, hosts: [h('b1', [50]), h('b2', [80], 3)] }), {
    ok: true,
    hostId: 'b1',
    storageLocation: 'loc0',
  });
  assert.deepEqual(placeReplica({ ...base, hosts: [h('b2', [50]), h('b1', [50])] }), {
    ok: true,
    hostId: 'b1',
    storageLocation: 'loc0',
  });
  assert.deepEqual(placeReplica({ ...base, hosts: [h('b1', [20, 60, 40])] }), {
    ok: true,
    hostId: 'b1',
    storageLocation: 'loc1',
  });
});

test('headroom, disconnection and classifications rule hosts out, each with its reason', () => {
  const r = placeReplica({
    ...base,
    hosts: [h('b1', [10.5]), h('b2', [80], 0, false), h('b3', [80], 0, true, 'Bronze')],
    allowedClassifications: ['Gold'],
  });
  assert.equal(r.ok, false);
  assert.ok(!r.ok);
  assert.match(r.reasons.join('\n'), /b1: 'loc0' has 10\.5 GiB free, needs 11.0 GiB/);
  assert.match(r.reasons.join('\n'), /b2: disconnected/);
  assert.match(r.reasons.join('\n'), /b3: no storage location of classification Gold/);
  assert.deepEqual(placeReplica({ ...base, hosts: [] }), {
    ok: false,
    reasons: ['the recovery cloud has no hosts'],
  });
});

test('an unmapped NIC network, or one mapped outside the recovery cloud, refuses the VM', () => {
  const unmapped = placeReplica({ ...base, networkMappings: new Map() });
  assert.ok(!unmapped.ok && /nic0 .*net-prod.*no network mapping/.test(unmapped.reasons.join()));
  const outside = placeReplica({ ...base, recoveryNetworks: new Set(['net-other']) });
  assert.ok(
    !outside.ok && /mapped to net-dr, which the recovery cloud does not offer/.test(outside.reasons.join()),
  );
  // a NIC on no network needs no mapping
  assert.equal(
    placeReplica({
      ...base,
      vm: { ...base.vm, nicNetworks: [{ nicId: 'nic0', vmNetworkId: null }] },
      networkMappings: new Map(),
    }).ok,
    true,
  );
});

test("the recovery cloud's VM and storage capacity must hold one more replica", () => {
  const full = placeReplica({
    ...base,
    cloud: { vmCount: 3, storageBytes: null, usedVmCount: 3, usedStorageBytes: 0 },
  });
  assert.ok(!full.ok && /capacity is 3 VMs and it holds 3 replicas/.test(full.reasons.join()));
  const noRoom = placeReplica({
    ...base,
    cloud: { vmCount: null, storageBytes: 100 * GiB, usedVmCount: 9, usedStorageBytes: 95 * GiB },
  });
  assert.ok(!noRoom.ok && /storage capacity is 100\.0 GiB/.test(noRoom.reasons.join()));
  assert.equal(
    placeReplica({
      ...base,
      cloud: { vmCount: 4, storageBytes: 100 * GiB, usedVmCount: 3, usedStorageBytes: 90 * GiB },
    }).ok,
    true,
  );
});

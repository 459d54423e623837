import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inventorySchema } from '../../protocol/vault-api/inventory.schema.js';
import { assembleInventory, type FabricRows, type HostRow } from './inventory-assembly.js';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

const host = (
  hostId: string,
  hostGroupId: string | null,
  vms: string[],
  state: HostRow['connectionState'] = 'connected',
): HostRow => ({
  hostId,
  hostGroupId,
  connectionState: state,
  replicationAddress: '10.0.0.1',
  replicationPort: 8084,
  certNotAfter: '2028-01-01T00:00:00.000Z',
  inventory: {
    hostId,
    memoryBytes: 1024,
    cpuCount: 4,
    storageLocations: [{ name: 'replicas', capacityBytes: 100, freeBytes: 50 }],
    vms: vms.map((vmId) => ({
      vmId,
      name: '',
      state: 'running',
      disks: [{ diskId: 'd0', sizeBytes: 10 }],
      nics: [{ nicId: 'nic0', network: 'prod', ipv4: '10.1.0.5' }],
    })),
  },
});

const rows: FabricRows = {
  managementVm: null,
  inventoryVersion: 7,
  hostGroups: [
    { hostGroupId: 'hg-top', name: 'top', parentHostGroupId: null },
    { hostGroupId: 'hg-mid', name: 'mid', parentHostGroupId: 'hg-top' },
    { hostGroupId: 'hg-leaf', name: 'leaf', parentHostGroupId: 'hg-mid' },
  ],
  hosts: [
    host('host-a', 'hg-leaf', ['vm1']),
    host('host-b', null, ['vm2'], 'disconnected'),
    host('host.c', 'hg-leaf', ['vm3']),
    host('host-d', 'hg-top', ['bad id!']),
  ],
  clouds: [
    {
      cloudId: 'cloud-gold',
      name: 'gold',
      hostGroupIds: ['hg-mid'],
      capacity: { vmCount: null, memoryBytes: null, storageBytes: null },
    },
  ],
  vmNetworks: [{ vmNetworkId: 'vmnet-prod', name: 'prod', cloudIds: ['cloud-gold'], subnets: [] }],
  storageClassifications: [{ hostId: 'host-a', location: 'replicas', classification: 'Gold' }],
};

test('VMs are placed through nested host groups; NICs get their VM network id; what the contract refuses is left out and named', () => {
  const { inventory, problems } = assembleInventory(rows, PEM);
  assert.equal(inventorySchema.safeParse(inventory).success, true);
  assert.deepEqual(
    inventory.vms.map((v) => [v.vmId, v.hostId, v.cloudId, v.powerState, v.name, v.nics[0]?.vmNetworkId]),
    [
      ['vm1', 'host-a', 'cloud-gold', 'running', 'vm1', 'vmnet-prod'],
      ['vm2', 'host-b', null, 'unknown', 'vm2', 'vmnet-prod'],
    ],
  );
  assert.deepEqual(
    inventory.hosts.map((h) => h.hostId),
    ['host-a', 'host-b', 'host-d'],
  );
  assert.equal(inventory.hosts[0]?.storageLocations[0]?.storageClassification, 'Gold');
  assert.equal(inventory.hosts[1]?.storageLocations[0]?.storageClassification, '');
  assert.equal(problems.length, 2, problems.join('\n'));
  assert.match(problems[0] ?? '', /host host\.c left out: its id is not a lower-case DNS label/);
  assert.match(problems[1] ?? '', /VM bad id! on host host-d left out: vmId/);
});

test("the management server's VM, when set, travels in the inventory", () => {
  assert.equal(assembleInventory(rows, PEM).inventory.managementVm, null);
  const set = { hostId: 'h1', vmId: 'vmm' };
  assert.deepEqual(assembleInventory({ ...rows, managementVm: set }, PEM).inventory.managementVm, set);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  deriveAuthorization,
  type CloudHostInput,
  type DerivedAuthorizationInput,
} from './derived-authorization.js';

const host = (hostId: string, ...locations: Array<[string, string]>): CloudHostInput => ({
  hostId,
  storageLocations: locations.map(([name, storageClassification]) => ({ name, storageClassification })),
});

const twoSites: DerivedAuthorizationInput = {
  pairings: [
    {
      primary: { managementServerId: 'ms-a', cloudId: 'cloud-prod' },
      recovery: { managementServerId: 'ms-b', cloudId: 'cloud-dr' },
    },
  ],
  storageMappings: [],
  cloudHosts: new Map([
    ['ms-a/cloud-prod', [host('a1', ['default', '']), host('a2', ['default', ''])]],
    ['ms-b/cloud-dr', [host('b1', ['gold', 'Gold'], ['bronze', 'Bronze'])]],
    ['ms-b/cloud-other', [host('b9', ['default', ''])]],
  ]),
  siteCas: new Map([
    ['ms-a', 'CA-A'],
    ['ms-b', 'CA-B'],
  ]),
};

test('a pairing lets every primary host into every location of every recovery host, and back', () => {
  const out = deriveAuthorization(twoSites);
  assert.deepEqual(
    out.map((h) => [h.managementServerId, h.hostId]),
    [
      ['ms-a', 'a1'],
      ['ms-a', 'a2'],
      ['ms-b', 'b1'],
    ],
    'hosts of unpaired clouds get nothing',
  );
  const b1 = out.find((h) => h.hostId === 'b1');
  assert.deepEqual(b1?.trustGroups, [{ name: 'ms-a', caCertPem: 'CA-A' }]);
  assert.deepEqual(
    b1?.entries.map((e) => `${e.primaryHostId}>${e.storageLocation}@${e.trustGroup}`),
    ['a1>bronze@ms-a', 'a1>gold@ms-a', 'a2>bronze@ms-a', 'a2>gold@ms-a'],
  );
  const a1 = out.find((h) => h.hostId === 'a1');
  assert.deepEqual(a1?.trustGroups, [{ name: 'ms-b', caCertPem: 'CA-B' }]);
  assert.deepEqual(
    a1?.entries.map((e) => `${e.primaryHostId}>${e.storageLocation}@${e.trustGroup}`),
    ['b1>default@ms-b'],
  );
});

test('a storage mapping limits the recovery locations to its classification', () => {
  const out = deriveAuthorization({
    ...twoSites,
    storageMappings: [
      {
        primaryManagementServerId: 'ms-a',
        primaryClassification: '',
        recoveryManagementServerId: 'ms-b',
        recoveryClassification: 'Gold',
      },
    ],
  });
  const b1 = out.find((h) => h.hostId === 'b1');
  assert.deepEqual([...new Set(b1?.entries.map((e) => e.storageLocation))], ['gold']);
  // the mapping is one-way: reverse replication into site A still uses all of a1's locations
  assert.deepEqual(
    out.find((h) => h.hostId === 'a1')?.entries.map((e) => e.storageLocation),
    ['default'],
  );
});

test('a single management server pairs its own clouds under its own trust group; no self entries', () => {
  const out = deriveAuthorization({
    pairings: [
      {
        primary: { managementServerId: 'ms-a', cloudId: 'c1' },
        recovery: { managementServerId: 'ms-a', cloudId: 'c2' },
      },
    ],
    storageMappings: [],
    cloudHosts: new Map([
      ['ms-a/c1', [host('h1', ['default', ''])]],
      ['ms-a/c2', [host('h2', ['default', ''])]],
    ]),
    siteCas: new Map([['ms-a', 'CA-A']]),
  });
  assert.deepEqual(
    out.map((h) => [h.hostId, h.trustGroups.map((g) => g.name), h.entries.map((e) => e.primaryHostId)]),
    [
      ['h1', ['ms-a'], ['h2']],
      ['h2', ['ms-a'], ['h1']],
    ],
  );
});

test('equal inputs give equal output; a site without a CA contributes nothing', () => {
  assert.deepEqual(deriveAuthorization(twoSites), deriveAuthorization(twoSites));
  const out = deriveAuthorization({ ...twoSites, siteCas: new Map([['ms-b', 'CA-B']]) });
  const b1 = out.find((h) => h.hostId === 'b1');
  assert.deepEqual(b1?.entries, []);
  assert.deepEqual(b1?.trustGroups, []);
});

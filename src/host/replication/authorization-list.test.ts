import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSecondsiteError } from '../../domain/errors.js';
import { AuthorizationList } from './authorization-list.js';

const list = new AuthorizationList([
  { primaryHostId: 'host-a', storageLocation: 'gold', trustGroup: 'tg1' },
  { primaryHostId: '*.site-a.example', storageLocation: 'silver', trustGroup: 'tg2' },
  { primaryHostId: 'h1.site-a.example', storageLocation: 'silver', trustGroup: 'tg-exact' },
]);

test('exact hosts and first-label wildcards match; nothing else does', () => {
  assert.ok(list.allowsHost('host-a'));
  assert.ok(list.allowsHost('h2.site-a.example'));
  assert.ok(!list.allowsHost('site-a.example'));
  assert.ok(!list.allowsHost('x.h2.site-a.example'));
  assert.ok(!list.allowsHost('host-b'));
  assert.ok(!list.allowsHost('evilsite-a.example'));
});

test('authorize checks the pair and prefers an exact entry over a pattern', () => {
  assert.equal(list.authorize('h2.site-a.example', 'silver').trustGroup, 'tg2');
  assert.equal(list.authorize('h1.site-a.example', 'silver').trustGroup, 'tg-exact');
  assert.throws(
    () => list.authorize('host-a', 'silver'),
    (e) =>
      isSecondsiteError(e, 'SECONDSITE_ERR_PEER_NOT_AUTHORIZED') &&
      /host-a/.test(e.message) &&
      /silver/.test(e.message),
  );
});

test('entries with a wildcard outside the first label, or paths as storage locations, are refused', () => {
  for (const bad of [
    { primaryHostId: 'a.*.example', storageLocation: 'gold', trustGroup: 't' },
    { primaryHostId: 'a*.example', storageLocation: 'gold', trustGroup: 't' },
    { primaryHostId: 'host-a', storageLocation: '../etc', trustGroup: 't' },
    { primaryHostId: 'host-a', storageLocation: '/var/lib', trustGroup: 't' },
    { primaryHostId: 'host-a', storageLocation: 'gold', trustGroup: 'a b' },
  ]) {
    assert.throws(
      () => new AuthorizationList([bad]),
      (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT'),
      JSON.stringify(bad),
    );
  }
});

test('with trust group issuers, an entry matches only hosts whose certificate its group CA issued', () => {
  const issuers = new Map([
    ['site-a', new Set(['FP:A'])],
    ['site-b', new Set(['FP:B'])],
  ]);
  const scoped = new AuthorizationList(
    [
      { primaryHostId: 'host-1', storageLocation: 'gold', trustGroup: 'site-a' },
      { primaryHostId: 'host-2', storageLocation: 'gold', trustGroup: 'site-unknown' },
    ],
    issuers,
  );
  assert.ok(scoped.allowsHost('host-1', 'FP:A'));
  assert.ok(!scoped.allowsHost('host-1', 'FP:B'), 'site B CA may not speak for a site A host');
  assert.ok(!scoped.allowsHost('host-1', null));
  assert.ok(!scoped.allowsHost('host-2', 'FP:A'), 'a group without issuers matches nobody');
  assert.equal(scoped.authorize('host-1', 'gold', 'FP:A').trustGroup, 'site-a');
  assert.throws(
    () => scoped.authorize('host-1', 'gold', 'FP:B'),
    (e) => isSecondsiteError(e, 'SECONDSITE_ERR_PEER_NOT_AUTHORIZED'),
  );
});

test("a pattern never matches the management server's own certificate names", () => {
  const wide = new AuthorizationList([
    { primaryHostId: '*.site', storageLocation: 'gold', trustGroup: 't' },
    { primaryHostId: '*.manager.site', storageLocation: 'gold', trustGroup: 't' },
  ]);
  assert.ok(wide.allowsHost('h1.site'));
  assert.ok(!wide.allowsHost('manager.site'));
  assert.ok(!wide.allowsHost('enrol.manager.site'));
});

test('issuersOf pins a host named exactly by entries to its trust groups; others are not pinned', () => {
  const issuers = new Map([
    ['site-b', new Set(['FP:B'])],
    ['site-c', new Set(['FP:C'])],
  ]);
  const l = new AuthorizationList(
    [
      { primaryHostId: 'host-b1', storageLocation: 'gold', trustGroup: 'site-b' },
      { primaryHostId: '*.c', storageLocation: 'gold', trustGroup: 'site-c' },
    ],
    issuers,
  );
  assert.deepEqual(l.issuersOf('host-b1'), new Set(['FP:B']));
  assert.equal(l.issuersOf('h.c'), null);
  assert.equal(l.issuersOf('host-z'), null);
  assert.equal(
    new AuthorizationList([{ primaryHostId: 'host-b1', storageLocation: 'g', trustGroup: 't' }]).issuersOf(
      'host-b1',
    ),
    null,
  );
});

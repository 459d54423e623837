import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSecondsiteError } from '../errors.js';
import type { ROLES } from './rbac.js';
import { ACTIONS, allows, authorize, rolesAllowing, type Principal } from './rbac.js';

const user = (role: (typeof ROLES)[number]): Principal => ({ kind: 'user', userId: 'u1', name: 'ann', role });
const provider: Principal = {
  kind: 'provider',
  managementServerId: 'ms-1',
  nodeName: 'node-1',
  certSerial: '01',
};

test('roles nest as DESIGN.md says: Reader within Tester within Operator; Owner has every user action', () => {
  for (const a of ACTIONS) {
    if (allows(user('Reader'), a)) assert.ok(allows(user('Tester'), a), a);
    if (allows(user('Tester'), a)) assert.ok(allows(user('Operator'), a), a);
    if (allows(user('Reader'), a)) assert.ok(allows(user('Contributor'), a), a);
    if (!a.startsWith('provider.')) assert.ok(allows(user('Owner'), a), a);
  }
  assert.ok(allows(user('Tester'), 'item.test-failover'));
  assert.ok(!allows(user('Tester'), 'item.failover'));
  assert.ok(allows(user('Operator'), 'item.failover'));
  assert.ok(!allows(user('Operator'), 'policy.write'));
  assert.ok(allows(user('Contributor'), 'item.enable'));
  assert.ok(!allows(user('Contributor'), 'item.failover'));
  assert.ok(!allows(user('Contributor'), 'user.write'));
  assert.deepEqual(rolesAllowing('user.write'), ['Owner']);
});

test('a provider may only do provider actions, and only for its own management server', () => {
  for (const a of ACTIONS) assert.equal(allows(provider, a), a.startsWith('provider.'), a);
  authorize(provider, 'provider.heartbeat', 'ms-1');
  for (const scope of ['ms-2', undefined]) {
    assert.throws(
      () => authorize(provider, 'provider.heartbeat', scope),
      (e: unknown) => isSecondsiteError(e, 'SECONDSITE_ERR_FORBIDDEN') && /only on its own/.test(e.message),
    );
  }
  assert.throws(
    () => authorize(user('Reader'), 'policy.write'),
    (e: unknown) =>
      isSecondsiteError(e, 'SECONDSITE_ERR_FORBIDDEN') && /Reader.*policy.write/.test(e.message),
  );
  // users are not scoped to a management server
  authorize(user('Operator'), 'item.failover', 'ms-2');
});

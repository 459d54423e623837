import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSecondsiteError } from '../../domain/errors.js';
import { compileHostConfig } from './host-config.js';

test('fills defaults under the state dir and freezes the result', () => {
  const c = compileHostConfig({ hostId: 'host-a', stateDir: '/var/lib/secondsite' });
  assert.equal(c.storageRoot, '/var/lib/secondsite/storage');
  assert.equal(c.controlSocket, '/var/lib/secondsite/agent.sock');
  assert.equal(c.replication.listenPort, 8084);
  assert.equal(c.replication.pkiDir, '/var/lib/secondsite/pki');
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.replication));
});

test('rejects bad fields with every problem named', () => {
  assert.throws(
    () =>
      compileHostConfig({ hostId: 'Host_A', stateDir: '/x', replication: { listenPort: 70000 }, extra: 1 }),
    (e) => {
      assert.ok(isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT'));
      assert.match(e.message, /hostId/);
      assert.match(e.message, /replication\.listenPort/);
      assert.match(e.message, /extra/);
      return true;
    },
  );
});

test('storage locations resolve relative to the state dir', () => {
  const c = compileHostConfig({
    hostId: 'host-b',
    stateDir: '/srv/b',
    replication: { storageLocations: { default: 'replicas' } },
  });
  assert.equal(c.replication.storageLocations['default'], '/srv/b/replicas');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { primaryProtectionState } from './primary-state.js';

test('the primary state follows the persisted state, the first point, the start time and a held resync', () => {
  const now = 1_000_000;
  const s = (f: Parameters<typeof primaryProtectionState>[0]): string => primaryProtectionState(f, now);
  assert.equal(s({ state: 'enabled', resyncHeldBack: false }), 'initial-replication');
  assert.equal(
    s({ state: 'enabled', startAtWallMs: now + 1, resyncHeldBack: false }),
    'ready-for-initial-replication',
  );
  assert.equal(s({ state: 'enabled', startAtWallMs: now, resyncHeldBack: false }), 'initial-replication');
  assert.equal(
    s({ state: 'enabled', initialDoneWallMs: 5, startAtWallMs: now + 1, resyncHeldBack: false }),
    'replicating',
  );
  assert.equal(s({ state: 'enabled', initialDoneWallMs: 5, resyncHeldBack: true }), 'resync-required');
  // the initial replication is never a held-back resync
  assert.equal(s({ state: 'enabled', resyncHeldBack: true }), 'initial-replication');
  assert.equal(s({ state: 'paused', initialDoneWallMs: 5, resyncHeldBack: true }), 'paused');
  assert.equal(s({ state: 'fenced', resyncHeldBack: false }), 'failed-over-away');
  assert.equal(s({ state: 'prepared', resyncHeldBack: false }), 'prepared-for-failover');
});

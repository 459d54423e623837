import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  hostDisconnectedMessage,
  hostDisconnectedSeverity,
  isRpoBreach,
  itemCriticalMessage,
  rpoBreachMessage,
  rpoThresholdSeconds,
  rpoThresholdTable,
} from './protection-alert-rules.js';

test('the RPO threshold follows the copy frequency: two intervals, at least one plus a minute', () => {
  assert.equal(rpoThresholdSeconds(0), 60);
  assert.equal(rpoThresholdSeconds(30), 90);
  assert.equal(rpoThresholdSeconds(300), 600);
  assert.equal(rpoThresholdSeconds(900), 1800);
  assert.deepEqual(
    rpoThresholdTable().map((r) => [r.copyFrequencySeconds, r.thresholdSeconds]),
    [
      [0, 60],
      [30, 90],
      [300, 600],
      [900, 1800],
    ],
  );
});

test('a copy frequency no policy can have is refused, not given a guessed threshold', () => {
  assert.throws(() => rpoThresholdSeconds(60), /copy frequency 60 s is not one of 0, 30, 300, 900/);
  assert.throws(() => rpoThresholdSeconds(-1), { name: 'SecondsiteError' });
});

test('a breach is strictly above the threshold', () => {
  assert.equal(isRpoBreach(90, 30), false);
  assert.equal(isRpoBreach(90.5, 30), true);
  assert.equal(isRpoBreach(59, 0), false);
  assert.equal(isRpoBreach(61, 0), true);
  assert.equal(isRpoBreach(599, 300), false);
});

test('a disconnected host is Critical only when it holds replicated items', () => {
  assert.equal(hostDisconnectedSeverity(0), 'Warning');
  assert.equal(hostDisconnectedSeverity(1), 'Critical');
  assert.equal(hostDisconnectedSeverity(250), 'Critical');
});

test('messages name the object, the facts and what to do', () => {
  const c = itemCriticalMessage({
    vmName: 'db01',
    itemId: 'item-1',
    reasons: ['resync required', 'lag 4000 s'],
  });
  assert.match(
    c,
    /VM db01 is Critical: resync required; lag 4000 s; see 'secondsite vault item show item-1'/,
  );
  assert.match(itemCriticalMessage({ vmName: 'x', itemId: 'i', reasons: [] }), /no reason reported/);
  const r = rpoBreachMessage({
    vmName: 'db01',
    itemId: 'item-1',
    rpoSeconds: 123.4,
    thresholdSeconds: 90,
    lastPointCutAt: '2026-11-22T10:00:00.000Z',
  });
  assert.match(r, /cut at 2026-11-22T10:00:00.000Z, 123 s ago, above the 90 s its policy allows/);
  assert.match(
    hostDisconnectedMessage({ hostId: 'hv1', managementServerName: 'vmm-east', replicatedItemCount: 1 }),
    /host hv1 of management server vmm-east is disconnected .* holds 1 replicated item \(/,
  );
  assert.match(
    hostDisconnectedMessage({ hostId: 'hv2', managementServerName: 'vmm-east', replicatedItemCount: 0 }),
    /holds no replicated items/,
  );
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSecondsiteError } from '../errors.js';
import {
  PRIMARY_STATES,
  PROTECTION_EVENTS,
  PROTECTION_OPERATIONS,
  REPLICA_STATES,
  allowedInputs,
  protectionTransition,
  roleOf,
  runsWritableVm,
  type ProtectionInput,
  type ProtectionState,
} from './protection.machine.js';

const STATES: ProtectionState[] = [...PRIMARY_STATES, ...REPLICA_STATES];
const INPUTS: ProtectionInput[] = [...PROTECTION_OPERATIONS, ...PROTECTION_EVENTS];

test('every (state, input) pair: allowed ones move as listed, the others are refused with the state and advice', () => {
  let allowed = 0;
  for (const state of STATES) {
    const ok = new Set(allowedInputs(state));
    for (const input of INPUTS) {
      if (ok.has(input)) {
        allowed++;
        const next = protectionTransition('vm1', state, input);
        assert.ok(STATES.includes(next), `${state} --${input}--> ${next}`);
        continue;
      }
      assert.throws(
        () => protectionTransition('vm1', state, input),
        (e: unknown) =>
          isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE') &&
          e.message.includes(`state ${state}`) &&
          e.message.includes('vm1') &&
          e.message.includes(input),
        `${state} must refuse ${input}`,
      );
    }
  }
  assert.ok(allowed > 20);
});

test('every state is reachable from not-protected, and every state can reach a protected state again', () => {
  const reach = (from: ProtectionState): Set<ProtectionState> => {
    const seen = new Set<ProtectionState>([from]);
    const queue = [from];
    while (queue.length > 0) {
      const s = queue.pop() as ProtectionState;
      for (const i of allowedInputs(s)) {
        const n = protectionTransition('vm', s, i);
        if (!seen.has(n)) {
          seen.add(n);
          queue.push(n);
        }
      }
    }
    return seen;
  };
  // a primary reaches the replica states through being fenced and reversed
  assert.deepEqual([...reach('not-protected')].sort(), [...STATES].sort());
  for (const s of STATES) {
    const r = reach(s);
    assert.ok(r.has('replicating') || r.has('receiving'), `${s} can get back to protection`);
  }
});

test('operations that keep a VM off are exactly the ones where no writable copy runs on this host', () => {
  assert.equal(runsWritableVm('failed-over-away'), false);
  assert.equal(runsWritableVm('prepared-for-failover'), false);
  assert.equal(runsWritableVm('receiving'), false);
  assert.equal(runsWritableVm('test-failover'), false, 'the test VM is isolated, not a writable primary');
  assert.equal(runsWritableVm('failover-pending-commit'), true);
  assert.equal(roleOf('failover-pending-commit'), 'replica');
  assert.equal(roleOf('prepared-for-failover'), 'primary');
});

test('a whole round trip: failover, commit, reverse, planned failover back, reverse again', () => {
  const step = (state: ProtectionState, input: ProtectionInput): ProtectionState =>
    protectionTransition('vm1', state, input);
  let a: ProtectionState = step(step('not-protected', 'enable'), 'initial-replication-done');
  let b: ProtectionState = 'receiving';
  b = step(step(b, 'test-failover'), 'test-cleanup');
  b = step(b, 'failover');
  assert.equal(b, 'failover-pending-commit');
  b = step(b, 'change-point');
  a = step(a, 'fenced');
  assert.equal(a, 'failed-over-away');
  assert.equal(runsWritableVm(a) && runsWritableVm(b), false, 'one writable copy');
  b = step(b, 'commit');
  a = step(a, 'reverse');
  b = step(b, 'reverse');
  assert.deepEqual([a, b], ['receiving', 'replicating']);
  // failback: planned failover from B back to A
  b = step(b, 'planned-failover');
  a = step(a, 'failover');
  b = step(b, 'fenced');
  a = step(a, 'commit');
  b = step(b, 'reverse');
  a = step(a, 'reverse');
  assert.deepEqual([a, b], ['replicating', 'receiving']);
  assert.throws(() => step(a, 'commit'), /state replicating/);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSecondsiteError } from '../errors.js';
import { SENDER_TRANSITIONS, senderTransition } from './sender-state.machine.js';
import type { SenderState } from './sender-state.machine.js';

const ALL = Object.keys(SENDER_TRANSITIONS) as SenderState[];

test('a normal cycle, a resumed cycle and a fenced primary follow allowed transitions', () => {
  const script: SenderState[][] = [
    ['idle', 'connecting', 'shipping', 'waiting-commit', 'idle'],
    ['idle', 'connecting', 'shipping', 'backoff', 'connecting', 'shipping', 'waiting-commit', 'idle'],
    ['idle', 'connecting', 'failed', 'connecting', 'shipping', 'idle'],
    ['idle', 'shipping', 'waiting-commit', 'backoff', 'failed', 'stopped'],
    ['idle', 'failed', 'idle'],
  ];
  for (const path of script) {
    let s = path[0] as SenderState;
    for (const next of path.slice(1)) s = senderTransition(s, next);
    assert.equal(s, path.at(-1));
  }
});

test('every pair not in the table is refused, and stopped is final', () => {
  for (const from of ALL) {
    for (const to of ALL) {
      const allowed = from === to || SENDER_TRANSITIONS[from].includes(to);
      if (allowed) assert.equal(senderTransition(from, to), to);
      else
        assert.throws(
          () => senderTransition(from, to),
          (e) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'),
        );
    }
  }
  assert.deepEqual(SENDER_TRANSITIONS.stopped, []);
  assert.throws(() => senderTransition('idle', 'waiting-commit'));
  assert.throws(() => senderTransition('stopped', 'idle'));
});

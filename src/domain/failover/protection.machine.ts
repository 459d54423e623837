/**
 * The protection state of one VM on one host (docs/design/failover.md section 2): a pure state machine.
 * The host agent persists the state in the VM's protection record and asks this machine before every
 * operation; a refused operation names the state the VM is in and what to do instead.
 *
 * Operations are what a person (or the vault) asks for; events are what the host observes (the initial
 * cycle committed, the sender was fenced, tracking lost sync).
 */
import { SecondsiteError } from '../errors.js';

export const PRIMARY_STATES = [
  'not-protected',
  'ready-for-initial-replication',
  'initial-replication',
  'replicating',
  'paused',
  'resync-required',
  'prepared-for-failover',
  'failed-over-away',
] as const;

export const REPLICA_STATES = [
  'receiving',
  'test-failover',
  'failover-pending-commit',
  'failed-over',
] as const;

export type ProtectionState = (typeof PRIMARY_STATES)[number] | (typeof REPLICA_STATES)[number];
export type ProtectionRole = 'primary' | 'replica';

export const PROTECTION_OPERATIONS = [
  'enable',
  'enable-scheduled',
  'pause',
  'resume',
  'disable',
  'resync',
  'verify',
  'planned-failover',
  'test-failover',
  'test-cleanup',
  'failover',
  'change-point',
  'commit',
  'cancel',
  'reverse',
] as const;

export const PROTECTION_EVENTS = [
  'start-time-reached',
  'initial-replication-done',
  'resync-needed',
  'resync-done',
  'fenced',
  'cancelled-by-replica',
] as const;

export type ProtectionOperation = (typeof PROTECTION_OPERATIONS)[number];
export type ProtectionEvent = (typeof PROTECTION_EVENTS)[number];
export type ProtectionInput = ProtectionOperation | ProtectionEvent;

type Table = Partial<Record<ProtectionInput, ProtectionState>>;

/** Next state per (state, input); anything absent is refused. */
const TRANSITIONS: Readonly<Record<ProtectionState, Table>> = {
  'not-protected': { enable: 'initial-replication', 'enable-scheduled': 'ready-for-initial-replication' },
  'ready-for-initial-replication': {
    'start-time-reached': 'initial-replication',
    pause: 'paused',
    disable: 'not-protected',
    fenced: 'failed-over-away',
  },
  'initial-replication': {
    'initial-replication-done': 'replicating',
    pause: 'paused',
    disable: 'not-protected',
    fenced: 'failed-over-away',
  },
  replicating: {
    pause: 'paused',
    disable: 'not-protected',
    resync: 'resync-required',
    'resync-needed': 'resync-required',
    verify: 'replicating',
    'planned-failover': 'prepared-for-failover',
    fenced: 'failed-over-away',
  },
  paused: { resume: 'replicating', disable: 'not-protected', fenced: 'failed-over-away' },
  'resync-required': {
    'resync-done': 'replicating',
    resync: 'resync-required',
    disable: 'not-protected',
    fenced: 'failed-over-away',
  },
  'prepared-for-failover': {
    fenced: 'failed-over-away',
    cancel: 'replicating',
    'cancelled-by-replica': 'replicating',
  },
  // the replica cancelled its failover and kept the raised epoch: resume at that epoch
  'failed-over-away': {
    reverse: 'receiving',
    disable: 'not-protected',
    'cancelled-by-replica': 'replicating',
  },
  receiving: {
    'test-failover': 'test-failover',
    failover: 'failover-pending-commit',
    disable: 'not-protected',
  },
  'test-failover': { 'test-cleanup': 'receiving' },
  'failover-pending-commit': {
    'change-point': 'failover-pending-commit',
    commit: 'failed-over',
    cancel: 'receiving',
  },
  'failed-over': { reverse: 'replicating', enable: 'initial-replication' },
};

/** What to do instead, per state (used in refusals). */
const ADVICE: Readonly<Record<ProtectionState, string>> = {
  'not-protected': 'enable replication first',
  'ready-for-initial-replication':
    'the initial replication waits for its scheduled start; pause or disable it, or wait',
  'initial-replication': 'wait for the initial replication to finish, or pause or disable it',
  replicating: 'the VM is protected; fail over from its replica host, or pause or disable replication',
  paused: 'resume replication first',
  'resync-required': 'run a resync first',
  'prepared-for-failover': 'complete the failover on the replica host, or cancel it',
  'failed-over-away': 'the VM now runs on its replica host; set up reverse replication, or disable',
  receiving: 'run a test failover or a failover on this replica host',
  'test-failover': 'clean up the test failover first',
  'failover-pending-commit': 'commit or cancel the failover first (or change the recovery point)',
  'failed-over': 'the VM runs here now; set up reverse replication',
};

export function roleOf(state: ProtectionState): ProtectionRole {
  return (REPLICA_STATES as readonly string[]).includes(state) ? 'replica' : 'primary';
}

/** Inputs accepted in `state`. */
export function allowedInputs(state: ProtectionState): ProtectionInput[] {
  return Object.keys(TRANSITIONS[state]) as ProtectionInput[];
}

/** True when the VM may be running writable on this host in `state` (the primary VM or a recovery VM). */
export function runsWritableVm(state: ProtectionState): boolean {
  return (
    state === 'not-protected' ||
    state === 'ready-for-initial-replication' ||
    state === 'initial-replication' ||
    state === 'replicating' ||
    state === 'paused' ||
    state === 'resync-required' ||
    state === 'failover-pending-commit' ||
    state === 'failed-over'
  );
}

/** The state after `input`, or SECONDSITE_ERR_INVALID_STATE naming the state and what to do. */
export function protectionTransition(
  vmId: string,
  state: ProtectionState,
  input: ProtectionInput,
): ProtectionState {
  const next = TRANSITIONS[state][input];
  if (next === undefined) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_STATE',
      `cannot ${input} ${vmId}: it is in state ${state} on this host; ${ADVICE[state]}`,
      { vmId, state, input, allowed: allowedInputs(state) },
    );
  }
  return next;
}

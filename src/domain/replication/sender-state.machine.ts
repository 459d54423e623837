/**
 * The states of a relationship's sender and the only transitions allowed between them (a documented,
 * closed union changed in one guarded place, Temporal/graphile style).
 *
 *   idle            between cycles, nothing in flight
 *   connecting      TLS connect + HELLO/WELCOME
 *   shipping        plan, resume token, chunks
 *   waiting-commit  CYCLE_END sent, waiting for POINT_COMMITTED
 *   backoff         a transient failure; the same cycle is retried after a delay
 *   failed          the last cycle failed (permanent error, or transient retries exhausted); its changes
 *                   were kept for the next cut, and the next scheduled cycle tries again
 *   stopped         stopped by the operator; final for this sender
 *
 *   idle -> connecting | shipping | backoff | failed | stopped     (backoff/failed: error before connecting)
 *   connecting -> shipping | backoff | failed | stopped
 *   shipping -> waiting-commit | idle | backoff | failed | stopped     (idle: the cycle was already a point)
 *   waiting-commit -> idle | backoff | failed | stopped
 *   backoff -> connecting | shipping | failed | stopped
 *   failed -> connecting | shipping | idle | stopped
 */
import { SecondsiteError } from '../errors.js';

export type SenderState =
  'idle' | 'connecting' | 'shipping' | 'waiting-commit' | 'backoff' | 'failed' | 'stopped';

export const SENDER_TRANSITIONS: Readonly<Record<SenderState, readonly SenderState[]>> = {
  idle: ['connecting', 'shipping', 'backoff', 'failed', 'stopped'],
  connecting: ['shipping', 'backoff', 'failed', 'stopped'],
  shipping: ['waiting-commit', 'idle', 'backoff', 'failed', 'stopped'],
  'waiting-commit': ['idle', 'backoff', 'failed', 'stopped'],
  backoff: ['connecting', 'shipping', 'failed', 'stopped'],
  failed: ['connecting', 'shipping', 'idle', 'stopped'],
  stopped: [],
};

/** The state after moving `from` -> `to`; staying put is always allowed. Throws INVALID_STATE otherwise. */
export function senderTransition(from: SenderState, to: SenderState): SenderState {
  if (from === to || SENDER_TRANSITIONS[from].includes(to)) return to;
  throw new SecondsiteError(
    'SECONDSITE_ERR_INVALID_STATE',
    `replication sender cannot go from '${from}' to '${to}'`,
    {
      from,
      to,
    },
  );
}

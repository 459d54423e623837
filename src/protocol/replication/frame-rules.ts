/**
 * Context checks of replication frames, one place for all of them (nbdkit-style): direction, seq
 * (exactly last + 1: replays and reordering are refused), relationship key, epoch (fencing), and
 * every extent against the disks announced in HELLO (known disk, 64-bit-safe offset + length within the
 * disk). Pure functions over a small mutable context the session owns.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Buffer } from 'node:buffer';
import type { FrameHeader } from './frame-codec.js';
import { RECEIVER_KINDS, SENDER_KINDS } from './messages.js';
import type { Message } from './messages.js';

export interface SessionContext {
  /** Which side sent the frames being checked. */
  readonly from: 'sender' | 'receiver';
  /** Set from HELLO on; frames must carry it. */
  relationshipKey: Buffer | null;
  /** The epoch every frame must carry (the checking side's current epoch), once known. */
  epoch: number | null;
  /** Seq of the last accepted frame from the peer (0 before the first). */
  lastSeq: number;
  /** Disks of the relationship, by index, once HELLO was accepted. */
  disks: ReadonlyArray<{ diskId: string; sizeBytes: number }>;
}

export function newSessionContext(from: 'sender' | 'receiver'): SessionContext {
  return { from, relationshipKey: null, epoch: null, lastSeq: 0, disks: [] };
}

function bad(message: string, details: Record<string, unknown> = {}): SecondsiteError {
  return new SecondsiteError('SECONDSITE_ERR_BAD_FRAME', message, details);
}

/** Header checks, run before the payload is read. Advances `lastSeq` when they pass. */
export function checkHeaderInSession(h: FrameHeader, ctx: SessionContext): void {
  const allowed = ctx.from === 'sender' ? SENDER_KINDS : RECEIVER_KINDS;
  if (!allowed.has(h.kind)) throw bad(`a ${ctx.from} may not send ${h.kind} frames`, { kind: h.kind });
  if (h.seq !== ctx.lastSeq + 1) {
    throw bad(
      `${h.kind} frame seq ${h.seq} where ${ctx.lastSeq + 1} was expected: replayed or reordered frame`,
      {
        seq: h.seq,
        expectedSeq: ctx.lastSeq + 1,
      },
    );
  }
  // ERROR frames are exempt from relationship and epoch checks: a refusal sent before HELLO, or a
  // STALE_EPOCH refusal, must reach the peer with its code.
  if (ctx.relationshipKey && h.kind !== 'error' && !ctx.relationshipKey.equals(h.relationshipKey)) {
    throw bad(`${h.kind} frame belongs to another relationship`);
  }
  if (ctx.epoch !== null && h.kind !== 'error') checkEpoch(h.epoch, ctx.epoch, ctx.from);
  ctx.lastSeq = h.seq;
}

/**
 * Fencing. On the receiver: an older epoch is a fenced primary (STALE_EPOCH); a newer one means the
 * replica was not told of a failover yet. On the sender the roles swap.
 */
export function checkEpoch(frameEpoch: number, currentEpoch: number, from: 'sender' | 'receiver'): void {
  if (frameEpoch === currentEpoch) return;
  const senderEpoch = from === 'sender' ? frameEpoch : currentEpoch;
  const receiverEpoch = from === 'sender' ? currentEpoch : frameEpoch;
  if (senderEpoch < receiverEpoch) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_STALE_EPOCH',
      `the primary is at epoch ${senderEpoch} but the replica is at epoch ${receiverEpoch}: this primary was fenced by a failover and must not replicate; reverse or re-enable replication from the new primary`,
      { senderEpoch, receiverEpoch },
    );
  }
  throw new SecondsiteError(
    'SECONDSITE_ERR_INVALID_STATE',
    `the primary is at epoch ${senderEpoch} but the replica is still at epoch ${receiverEpoch}: raise the replica's epoch (control plane) before replicating`,
    { senderEpoch, receiverEpoch },
  );
}

/** A [offset, offset+length) range on a disk of the session, with exact integer arithmetic. */
export function checkExtent(
  ctx: SessionContext,
  diskIndex: number,
  offsetBytes: number,
  lengthBytes: number,
  what: string,
): void {
  const disk = ctx.disks[diskIndex];
  if (!disk)
    throw bad(`${what}: unknown disk index ${diskIndex} (relationship has ${ctx.disks.length} disks)`, {
      diskIndex,
    });
  if (
    !Number.isSafeInteger(offsetBytes) ||
    !Number.isSafeInteger(lengthBytes) ||
    lengthBytes <= 0 ||
    offsetBytes < 0
  ) {
    throw bad(`${what}: bad range ${offsetBytes}+${lengthBytes}`, { offsetBytes, lengthBytes });
  }
  if (BigInt(offsetBytes) + BigInt(lengthBytes) > BigInt(disk.sizeBytes)) {
    throw bad(
      `${what}: range ${offsetBytes}+${lengthBytes} ends beyond disk '${disk.diskId}' (${disk.sizeBytes} bytes)`,
      {
        diskId: disk.diskId,
        offsetBytes,
        lengthBytes,
      },
    );
  }
}

/** Payload checks that need the session's disks. */
export function checkMessageInSession(m: Message, ctx: SessionContext): void {
  switch (m.kind) {
    case 'data':
    case 'zero':
      checkExtent(ctx, m.diskIndex, m.offsetBytes, m.lengthBytes, `${m.kind} frame`);
      break;
    case 'plan':
      for (const e of m.extents) checkExtent(ctx, e.diskIndex, e.offsetBytes, e.lengthBytes, 'plan frame');
      break;
    case 'cycle-ready':
      for (const e of [...m.staged, ...m.adopted])
        checkExtent(ctx, e.diskIndex, e.offsetBytes, e.lengthBytes, 'cycle-ready frame');
      break;
    case 'digests':
      for (const e of m.chunks) checkExtent(ctx, e.diskIndex, e.offsetBytes, e.lengthBytes, 'digests frame');
      break;
    default:
      break;
  }
}

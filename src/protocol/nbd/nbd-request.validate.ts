/**
 * Every NBD transmission request is judged here, once, before anything else happens to it (nbdkit's
 * validate_request). The verdict is `ok`, an errno reply, or a hard disconnect; handlers trust it.
 * Rules and their order: docs/design/nbd-server.md section 4. Bounds use 64-bit BigInt arithmetic, so an
 * offset near 2^64 can never wrap into range (CVE-2005-3534 shape).
 */
import {
  NBD_CMD_FLAG_DF,
  NBD_CMD_FLAG_FAST_ZERO,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_MAX_PAYLOAD_BYTES,
  NBD_REQUEST_MAGIC,
  NbdCmd,
  NbdErrno,
} from './nbd-constants.js';
import type { RequestHeader } from './nbd-transmission.codec.js';

export interface ValidationContext {
  /** Export size in bytes, as a BigInt. */
  readonly sizeBytes: bigint;
  readonly readOnly: boolean;
  readonly structuredReplies: boolean;
  /** A meta context (base:allocation) is selected for this export. */
  readonly blockStatusSelected: boolean;
}

export type Verdict =
  | { readonly kind: 'ok' }
  | { readonly kind: 'error'; readonly errno: number; readonly message: string }
  | { readonly kind: 'disconnect'; readonly reason: string };

const OK: Verdict = Object.freeze({ kind: 'ok' });
const KNOWN_FLAGS =
  NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_DF | NBD_CMD_FLAG_REQ_ONE | NBD_CMD_FLAG_FAST_ZERO;

const err = (errno: number, message: string): Verdict => ({ kind: 'error', errno, message });

/** Judges one request header. For WRITE, a non-disconnect verdict means `lengthBytes` payload follows. */
export function validateRequest(h: RequestHeader, ctx: ValidationContext): Verdict {
  if (h.magic !== NBD_REQUEST_MAGIC)
    return { kind: 'disconnect', reason: `bad request magic 0x${h.magic.toString(16)}` };
  const type = h.type;
  if (type === NbdCmd.WRITE && h.lengthBytes > NBD_MAX_PAYLOAD_BYTES)
    return { kind: 'disconnect', reason: `write payload of ${h.lengthBytes} bytes is over the 32 MiB limit` };
  if (type === NbdCmd.DISC) return OK;
  if (
    type !== NbdCmd.READ &&
    type !== NbdCmd.WRITE &&
    type !== NbdCmd.FLUSH &&
    type !== NbdCmd.TRIM &&
    type !== NbdCmd.WRITE_ZEROES &&
    type !== NbdCmd.BLOCK_STATUS
  )
    return err(NbdErrno.EINVAL, `unknown command ${type}`);
  const flags = h.flags;
  if ((flags & ~KNOWN_FLAGS) !== 0)
    return err(NbdErrno.EINVAL, `unknown command flags 0x${flags.toString(16)}`);
  if (flags & NBD_CMD_FLAG_FAST_ZERO) return err(NbdErrno.EINVAL, 'NBD_CMD_FLAG_FAST_ZERO is not advertised');
  if (flags & NBD_CMD_FLAG_NO_HOLE && type !== NbdCmd.WRITE_ZEROES)
    return err(NbdErrno.EINVAL, 'NBD_CMD_FLAG_NO_HOLE is only valid on NBD_CMD_WRITE_ZEROES');
  if (flags & NBD_CMD_FLAG_DF && (type !== NbdCmd.READ || !ctx.structuredReplies))
    return err(NbdErrno.EINVAL, 'NBD_CMD_FLAG_DF is only valid on NBD_CMD_READ with structured replies');
  if (flags & NBD_CMD_FLAG_REQ_ONE && type !== NbdCmd.BLOCK_STATUS)
    return err(NbdErrno.EINVAL, 'NBD_CMD_FLAG_REQ_ONE is only valid on NBD_CMD_BLOCK_STATUS');

  if (type === NbdCmd.FLUSH) {
    if (h.offset !== 0n || h.lengthBytes !== 0)
      return err(NbdErrno.EINVAL, 'NBD_CMD_FLUSH needs offset and length 0');
    return OK;
  }
  const writes = type === NbdCmd.WRITE || type === NbdCmd.TRIM || type === NbdCmd.WRITE_ZEROES;
  if (writes && ctx.readOnly) return err(NbdErrno.EPERM, 'the export is read-only');
  if (type === NbdCmd.READ && h.lengthBytes > NBD_MAX_PAYLOAD_BYTES)
    return err(NbdErrno.EINVAL, `read of ${h.lengthBytes} bytes is over the 32 MiB limit`);
  if (type === NbdCmd.BLOCK_STATUS) {
    if (!ctx.blockStatusSelected)
      return err(NbdErrno.EINVAL, 'no meta context was selected (base:allocation)');
    if (h.lengthBytes === 0) return err(NbdErrno.EINVAL, 'NBD_CMD_BLOCK_STATUS with length 0');
  }
  if (h.offset + BigInt(h.lengthBytes) > ctx.sizeBytes) {
    const message = `request [${h.offset}, +${h.lengthBytes}) is past the end of the export (${ctx.sizeBytes} bytes)`;
    return err(
      type === NbdCmd.WRITE || type === NbdCmd.WRITE_ZEROES ? NbdErrno.ENOSPC : NbdErrno.EINVAL,
      message,
    );
  }
  return OK;
}

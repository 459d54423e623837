import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  NBD_CMD_FLAG_DF,
  NBD_CMD_FLAG_FAST_ZERO,
  NBD_CMD_FLAG_FUA,
  NBD_CMD_FLAG_NO_HOLE,
  NBD_CMD_FLAG_REQ_ONE,
  NBD_REQUEST_MAGIC,
  NbdCmd,
  NbdErrno,
} from './nbd-constants.js';
import type { RequestHeader } from './nbd-transmission.codec.js';
import { validateRequest, type ValidationContext } from './nbd-request.validate.js';

const ctx: ValidationContext = {
  sizeBytes: 1_000_000n,
  readOnly: false,
  structuredReplies: true,
  blockStatusSelected: true,
};
const req = (type: number, offset: bigint, lengthBytes: number, flags = 0): RequestHeader => ({
  magic: NBD_REQUEST_MAGIC,
  flags,
  type,
  cookieHi: 0,
  cookieLo: 1,
  offset,
  lengthBytes,
});
const errno = (h: RequestHeader, c = ctx): number | string => {
  const v = validateRequest(h, c);
  return v.kind === 'error' ? v.errno : v.kind;
};

test('in-range requests are ok, FUA is accepted on every command', () => {
  for (const t of [NbdCmd.READ, NbdCmd.WRITE, NbdCmd.TRIM, NbdCmd.WRITE_ZEROES, NbdCmd.BLOCK_STATUS])
    assert.equal(errno(req(t, 0n, 4096, NBD_CMD_FLAG_FUA)), 'ok');
  assert.equal(errno(req(NbdCmd.FLUSH, 0n, 0, NBD_CMD_FLAG_FUA)), 'ok');
  assert.equal(errno(req(NbdCmd.READ, 999_999n, 1)), 'ok');
  assert.equal(errno(req(NbdCmd.DISC, 0n, 0)), 'ok');
});

test('past the end: writes get ENOSPC, reads/trims/block status EINVAL, with 64-bit offsets', () => {
  assert.equal(errno(req(NbdCmd.WRITE, 999_999n, 2)), NbdErrno.ENOSPC);
  assert.equal(errno(req(NbdCmd.WRITE_ZEROES, 1_000_000n, 1)), NbdErrno.ENOSPC);
  assert.equal(errno(req(NbdCmd.READ, 999_999n, 2)), NbdErrno.EINVAL);
  assert.equal(errno(req(NbdCmd.TRIM, 2n ** 64n - 1n, 1)), NbdErrno.EINVAL);
  assert.equal(errno(req(NbdCmd.BLOCK_STATUS, 2n ** 64n - 4096n, 8192)), NbdErrno.EINVAL);
  assert.equal(errno(req(NbdCmd.READ, 2n ** 64n - 1n, 0xffffffff)), NbdErrno.EINVAL);
});

test('bad magic and oversized write payloads disconnect; oversized reads are EINVAL', () => {
  assert.equal(errno({ ...req(NbdCmd.READ, 0n, 1), magic: 0x12345678 }), 'disconnect');
  assert.equal(errno(req(NbdCmd.WRITE, 0n, 32 * 1024 * 1024 + 1)), 'disconnect');
  assert.equal(errno(req(NbdCmd.WRITE, 0n, 0xffffffff)), 'disconnect');
  assert.equal(errno(req(NbdCmd.READ, 0n, 32 * 1024 * 1024 + 1)), NbdErrno.EINVAL);
});

test('unknown commands and flags, and flags on the wrong command, are EINVAL', () => {
  assert.equal(errno(req(NbdCmd.CACHE, 0n, 1)), NbdErrno.EINVAL);
  assert.equal(errno(req(NbdCmd.RESIZE, 0n, 0)), NbdErrno.EINVAL);
  assert.equal(errno(req(99, 0n, 1)), NbdErrno.EINVAL);
  assert.equal(errno(req(NbdCmd.READ, 0n, 1, 1 << 9)), NbdErrno.EINVAL);
  assert.equal(errno(req(NbdCmd.WRITE, 0n, 1, NBD_CMD_FLAG_NO_HOLE)), NbdErrno.EINVAL);
  assert.equal(errno(req(NbdCmd.WRITE_ZEROES, 0n, 1, NBD_CMD_FLAG_NO_HOLE)), 'ok');
  assert.equal(errno(req(NbdCmd.WRITE, 0n, 1, NBD_CMD_FLAG_DF)), NbdErrno.EINVAL);
  assert.equal(errno(req(NbdCmd.READ, 0n, 1, NBD_CMD_FLAG_DF)), 'ok');
  assert.equal(
    errno(req(NbdCmd.READ, 0n, 1, NBD_CMD_FLAG_DF), { ...ctx, structuredReplies: false }),
    NbdErrno.EINVAL,
  );
  assert.equal(errno(req(NbdCmd.READ, 0n, 1, NBD_CMD_FLAG_REQ_ONE)), NbdErrno.EINVAL);
  assert.equal(errno(req(NbdCmd.BLOCK_STATUS, 0n, 1, NBD_CMD_FLAG_REQ_ONE)), 'ok');
  assert.equal(errno(req(NbdCmd.WRITE_ZEROES, 0n, 1, NBD_CMD_FLAG_FAST_ZERO)), NbdErrno.EINVAL);
  assert.equal(errno(req(NbdCmd.FLUSH, 1n, 0)), NbdErrno.EINVAL);
});

test('read-only exports refuse writes with EPERM; block status needs a selected context', () => {
  const ro = { ...ctx, readOnly: true };
  for (const t of [NbdCmd.WRITE, NbdCmd.TRIM, NbdCmd.WRITE_ZEROES])
    assert.equal(errno(req(t, 0n, 1), ro), NbdErrno.EPERM);
  assert.equal(errno(req(NbdCmd.READ, 0n, 1), ro), 'ok');
  assert.equal(
    errno(req(NbdCmd.BLOCK_STATUS, 0n, 1), { ...ctx, blockStatusSelected: false }),
    NbdErrno.EINVAL,
  );
  assert.equal(errno(req(NbdCmd.BLOCK_STATUS, 0n, 0)), NbdErrno.EINVAL);
});

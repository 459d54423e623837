import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NBD_FLAG_C_FIXED_NEWSTYLE, NBD_FLAG_CAN_MULTI_CONN, NbdOpt, NbdRep } from './nbd-constants.js';
import { decodeOptionReplyHeader, encodeGoPayload, encodeMetaContextPayload } from './nbd-handshake.codec.js';
import {
  OPTION_TABLE,
  acceptClientFlags,
  afterTlsHandshake,
  handlerFor,
  stepOption,
  type ExportCatalog,
  type Session,
} from './nbd-option.machine.js';

const catalog: ExportCatalog = {
  lookup: (n) =>
    n === 'disk' ? { name: 'disk', sizeBytes: 1 << 20, readOnly: false, multiConn: true } : undefined,
  names: () => ['disk'],
};
const start = (mode: 'none' | 'forced'): Session => {
  const r = acceptClientFlags(NBD_FLAG_C_FIXED_NEWSTYLE, mode);
  assert.ok(r.ok);
  return r.session;
};
const replyTypes = (replies: readonly Buffer[]): number[] =>
  replies.map((r) => decodeOptionReplyHeader(r).replyType);
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
};

test('client flags: unknown bits and missing fixed newstyle close the connection', () => {
  assert.equal(acceptClientFlags(0, 'none').ok, false);
  assert.equal(acceptClientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | 4, 'none').ok, false);
  assert.equal(start('forced').state, 'needTls');
  assert.equal(start('none').state, 'options');
});

test('the table: forced mode serves only STARTTLS and ABORT, EXPORT_NAME closes', () => {
  assert.equal(handlerFor('needTls', NbdOpt.GO), 'tlsRequired');
  assert.equal(handlerFor('needTls', NbdOpt.STRUCTURED_REPLY), 'tlsRequired');
  assert.equal(handlerFor('needTls', 12345), 'tlsRequired');
  assert.equal(handlerFor('needTls', NbdOpt.EXPORT_NAME), 'exportNameNeedsTls');
  assert.equal(handlerFor('options', 12345), 'unsupported');
  assert.deepEqual(Object.keys(OPTION_TABLE), ['needTls', 'options']);
  const s = start('forced');
  for (const opt of [NbdOpt.GO, NbdOpt.INFO, NbdOpt.LIST, NbdOpt.STRUCTURED_REPLY, NbdOpt.SET_META_CONTEXT]) {
    const step = stepOption(s, opt, Buffer.alloc(0), catalog);
    assert.deepEqual(replyTypes(step.replies), [NbdRep.ERR_TLS_REQD]);
    assert.equal(step.session.structuredReplies, false);
  }
  assert.equal(stepOption(s, NbdOpt.EXPORT_NAME, Buffer.from('disk'), catalog).effect, 'close');
  assert.equal(stepOption(s, NbdOpt.STARTTLS, Buffer.alloc(0), catalog).effect, 'starttls');
});

test('STARTTLS discards everything negotiated before it', () => {
  let s = start('none');
  s = stepOption(s, NbdOpt.STRUCTURED_REPLY, Buffer.alloc(0), catalog).session;
  s = stepOption(
    s,
    NbdOpt.SET_META_CONTEXT,
    encodeMetaContextPayload('disk', ['base:allocation']),
    catalog,
  ).session;
  assert.ok(s.structuredReplies && s.metaContext);
  const after = afterTlsHandshake(s);
  assert.equal(after.structuredReplies, false);
  assert.equal(after.metaContext, null);
  assert.equal(after.tls, true);
  assert.deepEqual(replyTypes(stepOption(after, NbdOpt.STARTTLS, Buffer.alloc(0), catalog).replies), [
    NbdRep.ERR_INVALID,
  ]);
  assert.deepEqual(replyTypes(stepOption(s, NbdOpt.STARTTLS, Buffer.alloc(0), catalog).replies), [
    NbdRep.ERR_POLICY,
  ]);
});

test('GO answers block size and export info, then enters transmission; unknown names get ERR_UNKNOWN', () => {
  const s = start('none');
  const go = stepOption(s, NbdOpt.GO, encodeGoPayload('disk', [3]), catalog);
  assert.equal(go.effect, 'transmission');
  assert.deepEqual(replyTypes(go.replies), [NbdRep.INFO, NbdRep.INFO, NbdRep.ACK]);
  const flags = (go.replies[1] as Buffer).readUInt16BE(20 + 10);
  assert.ok(flags & NBD_FLAG_CAN_MULTI_CONN);
  const bad = stepOption(s, NbdOpt.GO, encodeGoPayload('../etc/passwd', []), catalog);
  assert.equal(bad.effect, 'continue');
  assert.deepEqual(replyTypes(bad.replies), [NbdRep.ERR_UNKNOWN]);
});

test('GO payloads with lying lengths are ERR_INVALID without slicing (CVE-2022-26495 shape)', () => {
  const s = start('none');
  const huge = Buffer.concat([u32(0xffffffff), Buffer.from('disk'), Buffer.alloc(2)]);
  assert.deepEqual(replyTypes(stepOption(s, NbdOpt.GO, huge, catalog).replies), [NbdRep.ERR_INVALID]);
  const long = Buffer.concat([u32(5000), Buffer.alloc(5000, 0x61), Buffer.alloc(2)]);
  assert.deepEqual(replyTypes(stepOption(s, NbdOpt.GO, long, catalog).replies), [NbdRep.ERR_INVALID]);
  const nul = encodeGoPayload('di\0sk', []);
  assert.deepEqual(replyTypes(stepOption(s, NbdOpt.GO, nul, catalog).replies), [NbdRep.ERR_INVALID]);
  assert.deepEqual(replyTypes(stepOption(s, NbdOpt.GO, Buffer.alloc(3), catalog).replies), [
    NbdRep.ERR_INVALID,
  ]);
});

test('meta contexts need structured replies; SET selects base:allocation; GO to another export clears it', () => {
  let s = start('none');
  const q = encodeMetaContextPayload('disk', ['base:allocation']);
  assert.deepEqual(replyTypes(stepOption(s, NbdOpt.SET_META_CONTEXT, q, catalog).replies), [
    NbdRep.ERR_INVALID,
  ]);
  s = stepOption(s, NbdOpt.STRUCTURED_REPLY, Buffer.alloc(0), catalog).session;
  const list = stepOption(s, NbdOpt.LIST_META_CONTEXT, encodeMetaContextPayload('disk', []), catalog);
  assert.deepEqual(replyTypes(list.replies), [NbdRep.META_CONTEXT, NbdRep.ACK]);
  const set = stepOption(s, NbdOpt.SET_META_CONTEXT, q, catalog);
  assert.deepEqual(replyTypes(set.replies), [NbdRep.META_CONTEXT, NbdRep.ACK]);
  assert.deepEqual(set.session.metaContext?.ids, [1]);
  const none = stepOption(
    s,
    NbdOpt.SET_META_CONTEXT,
    encodeMetaContextPayload('disk', ['qemu:dirty']),
    catalog,
  );
  assert.deepEqual(replyTypes(none.replies), [NbdRep.ACK]);
  const unknown = stepOption(s, NbdOpt.SET_META_CONTEXT, encodeMetaContextPayload('nope', []), catalog);
  assert.deepEqual(replyTypes(unknown.replies), [NbdRep.ERR_UNKNOWN]);
});

test('LIST, ABORT, EXPORT_NAME and unknown options', () => {
  const s = start('none');
  assert.deepEqual(replyTypes(stepOption(s, NbdOpt.LIST, Buffer.alloc(0), catalog).replies), [
    NbdRep.SERVER,
    NbdRep.ACK,
  ]);
  assert.deepEqual(replyTypes(stepOption(s, NbdOpt.LIST, Buffer.alloc(1), catalog).replies), [
    NbdRep.ERR_INVALID,
  ]);
  assert.equal(stepOption(s, NbdOpt.ABORT, Buffer.alloc(0), catalog).effect, 'close');
  const ex = stepOption(s, NbdOpt.EXPORT_NAME, Buffer.from('disk'), catalog);
  assert.equal(ex.effect, 'transmission');
  assert.equal((ex.replies[0] as Buffer).length, 134);
  assert.equal(stepOption(s, NbdOpt.EXPORT_NAME, Buffer.from('nope'), catalog).effect, 'close');
  assert.deepEqual(replyTypes(stepOption(s, 999, Buffer.alloc(0), catalog).replies), [NbdRep.ERR_UNSUP]);
});

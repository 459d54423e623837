// One test per malformed-input shape (security.md S18 and the CVE table in docs/design/nbd-server.md),
// written with raw sockets. After each, the server must still be alive and serve a good client.
// The forced-TLS shapes (options before STARTTLS, EXPORT_NAME without TLS, STRUCTURED_REPLY before
// STARTTLS) are in nbd-tls.test.ts, because they need the TCP listener.
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { NbdClient } from '../../src/guest/nbd-client.js';
import {
  BASE_ALLOCATION,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_REQUEST_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
  NbdCmd,
  NbdErrno,
  NbdOpt,
  NbdRep,
  NbdReplyType,
} from '../../src/protocol/nbd/nbd-constants.js';
import {
  encodeGoPayload,
  encodeMetaContextPayload,
  encodeOptionHeader,
} from '../../src/protocol/nbd/nbd-handshake.codec.js';
import { MiB, RawConn, assertServes, sleep, startServer, tempDir, type TestServer } from './nbd-test-kit.js';

const SIZE = 4 * MiB;
let tmp: { dir: string; cleanup: () => Promise<void> };
let srv: TestServer;
const opened: RawConn[] = [];

before(async () => {
  tmp = await tempDir();
  srv = await startServer(tmp.dir, { disk: SIZE });
});
afterEach(async () => {
  for (const c of opened.splice(0)) c.destroy();
  await assertServes(srv.socketPath);
});
after(async () => {
  await srv.close();
  await tmp.cleanup();
});

async function open(path = srv.socketPath): Promise<RawConn> {
  const c = await RawConn.open(path);
  opened.push(c);
  return c;
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};

function request(type: number, offset: bigint, length: number, flags = 0, cookie = 1): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeUInt32BE(cookie, 12);
  b.writeBigUInt64BE(offset, 16);
  b.writeUInt32BE(length, 24);
  return b;
}

/** Negotiates structured replies + base:allocation and enters transmission with GO. */
async function openTransmission(): Promise<RawConn> {
  const c = await open();
  await c.greet();
  c.sendOption(NbdOpt.STRUCTURED_REPLY);
  assert.equal((await c.optionReply()).replyType, NbdRep.ACK);
  c.sendOption(NbdOpt.SET_META_CONTEXT, encodeMetaContextPayload('disk', [BASE_ALLOCATION]));
  assert.deepEqual(await c.finalReply(), [NbdRep.META_CONTEXT, NbdRep.ACK]);
  c.sendOption(NbdOpt.GO, encodeGoPayload('disk', []));
  assert.equal((await c.finalReply()).at(-1), NbdRep.ACK);
  return c;
}

/** Reads one structured chunk: cookie, type, flags and payload. */
async function chunk(c: RawConn): Promise<{ cookie: number; type: number; flags: number; body: Buffer }> {
  const h = await c.read(20);
  assert.equal(h.readUInt32BE(0), NBD_STRUCTURED_REPLY_MAGIC);
  return {
    flags: h.readUInt16BE(4),
    type: h.readUInt16BE(6),
    cookie: h.readUInt32BE(12),
    body: await c.read(h.readUInt32BE(16)),
  };
}

async function expectErrno(c: RawConn, cookie: number, errno: number): Promise<void> {
  const ch = await chunk(c);
  assert.equal(ch.cookie, cookie);
  assert.equal(ch.type, NbdReplyType.ERROR, `expected an error chunk, got type ${ch.type}`);
  assert.equal(ch.body.readUInt32BE(0), errno);
}

test('bad option magic closes the connection', async () => {
  const c = await open();
  await c.greet();
  c.write(Buffer.alloc(16, 0x41));
  assert.ok(await c.waitClosed());
});

test('bad client flags (unknown bits, or no fixed newstyle) close the connection', async () => {
  for (const flags of [0x80, 0]) {
    const c = await open();
    await c.read(18);
    c.write(u32(flags));
    assert.ok(await c.waitClosed(), `client flags ${flags}`);
  }
});

test('name length 0xffffffff in GO and INFO is ERR_INVALID, and the session goes on (CVE-2022-26495)', async () => {
  const c = await open();
  await c.greet();
  for (const opt of [NbdOpt.GO, NbdOpt.INFO]) {
    c.sendOption(opt, Buffer.concat([u32(0xffffffff), Buffer.from('disk'), Buffer.alloc(2)]));
    assert.equal((await c.optionReply()).replyType, NbdRep.ERR_INVALID);
  }
  c.sendOption(NbdOpt.SET_META_CONTEXT, Buffer.concat([u32(0xffffffff), Buffer.alloc(8)]));
  assert.equal((await c.optionReply()).replyType, NbdRep.ERR_INVALID); // (structured replies not on, also INVALID)
  c.sendOption(NbdOpt.LIST);
  assert.deepEqual(await c.finalReply(), [NbdRep.SERVER, NbdRep.ACK]);
});

test('option data > 4096 bytes: long names are ERR_INVALID, big options ERR_TOO_BIG, huge ones disconnect', async () => {
  const c = await open();
  await c.greet();
  const longName = Buffer.alloc(5000, 0x61);
  c.sendOption(NbdOpt.GO, Buffer.concat([u32(longName.length), longName, Buffer.alloc(2)]));
  assert.equal((await c.optionReply()).replyType, NbdRep.ERR_INVALID);
  c.sendOption(NbdOpt.INFO, Buffer.alloc(20_000));
  assert.equal((await c.optionReply()).replyType, NbdRep.ERR_TOO_BIG);
  c.sendOption(NbdOpt.LIST);
  assert.deepEqual(await c.finalReply(), [NbdRep.SERVER, NbdRep.ACK]);
  const header = encodeOptionHeader(NbdOpt.GO, Buffer.alloc(0));
  header.writeUInt32BE(0xffffffff, 12);
  c.write(header);
  assert.ok(await c.waitClosed(), 'a 4 GiB option must be a hard disconnect');
});

test('EXPORT_NAME with an unknown, overlong or NUL-bearing name disconnects; path-like names are just unknown', async () => {
  for (const name of [Buffer.from('../../etc/passwd'), Buffer.alloc(4097, 0x61), Buffer.from('di\0sk')]) {
    const c = await open();
    await c.greet();
    c.sendOption(NbdOpt.EXPORT_NAME, name);
    assert.ok(await c.waitClosed());
  }
  const c = await open();
  await c.greet();
  c.sendOption(NbdOpt.GO, encodeGoPayload('/disk', []));
  assert.equal((await c.optionReply()).replyType, NbdRep.ERR_UNKNOWN);
});

test('STARTTLS on the local Unix listener is refused with ERR_POLICY', async () => {
  const c = await open();
  await c.greet();
  c.sendOption(NbdOpt.STARTTLS);
  assert.equal((await c.optionReply()).replyType, NbdRep.ERR_POLICY);
  c.sendOption(NbdOpt.STARTTLS, Buffer.alloc(3));
  assert.equal((await c.optionReply()).replyType, NbdRep.ERR_POLICY);
});

test('commands before GO disconnect (CVE-2019-14850/14851 shape)', async () => {
  const c = await open();
  await c.greet();
  c.write(request(NbdCmd.READ, 0n, 512));
  assert.ok(await c.waitClosed());
  const d = await open();
  await d.read(18);
  d.write(Buffer.concat([u32(NBD_FLAG_C_FIXED_NEWSTYLE), request(NbdCmd.WRITE, 0n, 512), Buffer.alloc(512)]));
  assert.ok(await d.waitClosed());
  assert.deepEqual(await srv.devices.get('disk')?.read(0, 512), Buffer.alloc(512));
});

test('unknown commands and flags get EINVAL and the connection goes on', async () => {
  const c = await openTransmission();
  c.write(request(NbdCmd.CACHE, 0n, 512, 0, 1));
  await expectErrno(c, 1, NbdErrno.EINVAL);
  c.write(request(200, 0n, 0, 0, 2));
  await expectErrno(c, 2, NbdErrno.EINVAL);
  c.write(request(NbdCmd.READ, 0n, 512, 1 << 7, 3));
  await expectErrno(c, 3, NbdErrno.EINVAL);
  c.write(request(NbdCmd.WRITE, 0n, 4, 1 << 12, 4));
  c.write(Buffer.from('abcd'));
  await expectErrno(c, 4, NbdErrno.EINVAL);
  c.write(request(NbdCmd.READ, 1n, 3, 0, 5)); // misaligned I/O is fine: minimum block size 1
  const ok = await chunk(c);
  assert.equal(ok.cookie, 5);
  assert.notEqual(ok.type & 0x8000, 0x8000);
});

test('read/trim/block status past the end get EINVAL, writes ENOSPC with the payload drained', async () => {
  const c = await openTransmission();
  c.write(request(NbdCmd.READ, BigInt(SIZE - 1), 2, 0, 1));
  await expectErrno(c, 1, NbdErrno.EINVAL);
  c.write(request(NbdCmd.READ, 2n ** 64n - 1n, 0xffffffff, 0, 2));
  await expectErrno(c, 2, NbdErrno.EINVAL);
  c.write(request(NbdCmd.TRIM, BigInt(SIZE), 1, 0, 3));
  await expectErrno(c, 3, NbdErrno.EINVAL);
  c.write(request(NbdCmd.BLOCK_STATUS, 2n ** 64n - 512n, 1024, 0, 4));
  await expectErrno(c, 4, NbdErrno.EINVAL);
  c.write(Buffer.concat([request(NbdCmd.WRITE, BigInt(SIZE - 2), 4, 0, 5), Buffer.from('WXYZ')]));
  await expectErrno(c, 5, NbdErrno.ENOSPC);
  c.write(request(NbdCmd.WRITE_ZEROES, 2n ** 63n, 4096, 0, 6));
  await expectErrno(c, 6, NbdErrno.ENOSPC);
  c.write(Buffer.concat([request(NbdCmd.WRITE, 0n, 4, 0, 7), Buffer.from('good')]));
  const ok = await chunk(c);
  assert.equal(ok.cookie, 7);
  assert.equal(ok.type, NbdReplyType.NONE);
  assert.deepEqual(await srv.devices.get('disk')?.read(SIZE - 2, 2), Buffer.alloc(2));
});

test('write payload > 32 MiB is a hard disconnect without reading it', async () => {
  const c = await openTransmission();
  c.write(request(NbdCmd.WRITE, 0n, 32 * MiB + 1, 0, 1));
  assert.ok(await c.waitClosed());
  const d = await openTransmission();
  d.write(request(NbdCmd.WRITE, 0n, 0xffffffff, 0, 1));
  assert.ok(await d.waitClosed());
});

test('bad request magic in transmission is a hard disconnect', async () => {
  const c = await openTransmission();
  const r = request(NbdCmd.READ, 0n, 512);
  r.writeUInt32BE(0xdeadbeef, 0);
  c.write(r);
  assert.ok(await c.waitClosed());
});

test('DISC answers in-flight requests first, then closes', async () => {
  const c = await openTransmission();
  c.write(
    Buffer.concat([request(NbdCmd.WRITE, 4096n, 4, 0, 9), Buffer.from('disc'), request(NbdCmd.DISC, 0n, 0)]),
  );
  const ch = await chunk(c);
  assert.equal(ch.cookie, 9);
  assert.ok(await c.waitClosed());
  assert.deepEqual(await srv.devices.get('disk')?.read(4096, 4), Buffer.from('disc'));
});

test('simple replies (no structured replies) carry the errno', async () => {
  const c = await NbdClient.connect({
    socketPath: srv.socketPath,
    exportName: 'disk',
    structuredReplies: false,
  });
  await assert.rejects(
    c.read(SIZE, 1),
    (e: { details?: { errno?: number } }) => e.details?.errno === NbdErrno.EINVAL,
  );
  await assert.rejects(
    c.request(NbdCmd.BLOCK_STATUS, 0, 0, 512),
    (e: { details?: { errno?: number } }) => e.details?.errno === NbdErrno.EINVAL,
  );
  assert.equal((await c.read(0, 10)).length, 10);
  await c.close();
});

test('client disconnect at every byte offset of the handshake', async () => {
  const flags = u32(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
  const script = Buffer.concat([
    flags,
    encodeOptionHeader(NbdOpt.STRUCTURED_REPLY, Buffer.alloc(0)),
    encodeOptionHeader(NbdOpt.SET_META_CONTEXT, encodeMetaContextPayload('disk', [BASE_ALLOCATION])),
    encodeOptionHeader(NbdOpt.GO, encodeGoPayload('disk', [3])),
    request(NbdCmd.WRITE, 0n, 8),
    Buffer.from('partial!'),
  ]);
  for (let i = 0; i <= script.length; i++) {
    const c = await RawConn.open(srv.socketPath);
    if (i % 2 === 0) await c.read(18);
    c.write(script.subarray(0, i));
    await sleep(1);
    c.destroy();
  }
  for (let i = 0; i < 100 && srv.server.connectionCount > 0; i++) await sleep(20);
  assert.equal(srv.server.connectionCount, 0, 'connections leaked after client disconnects');
});

test('idle sockets past the cap are refused, and the handshake timeout frees the slots (CVE-2024-7409)', async () => {
  const { dir, cleanup } = await tempDir();
  const small = await startServer(
    dir,
    { disk: MiB },
    { handshakeTimeoutMs: 400, maxHandshakes: 4, maxConnections: 6 },
  );
  try {
    const idle: RawConn[] = [];
    for (let i = 0; i < 4; i++) idle.push(await RawConn.open(small.socketPath));
    await sleep(50);
    const extra = await RawConn.open(small.socketPath);
    assert.ok(await extra.waitClosed(1000), 'a socket past the handshake cap was kept');
    const started = Date.now();
    for (const c of idle)
      assert.ok(await c.waitClosed(3000), 'an idle socket outlived the handshake timeout');
    assert.ok(Date.now() - started < 2500);
    // A socket that greets and then stalls mid-option also times out.
    const stall = await RawConn.open(small.socketPath);
    await stall.greet();
    stall.write(encodeOptionHeader(NbdOpt.GO, Buffer.alloc(100)).subarray(0, 30));
    assert.ok(await stall.waitClosed(3000));
    // Established connections count against maxConnections, but not against maxHandshakes.
    const clients: NbdClient[] = [];
    for (let i = 0; i < 6; i++)
      clients.push(await NbdClient.connect({ socketPath: small.socketPath, exportName: 'disk' }));
    const seventh = await RawConn.open(small.socketPath);
    assert.ok(await seventh.waitClosed(1000), 'a socket past the connection cap was kept');
    await Promise.all(clients.map((c) => c.close()));
    for (let i = 0; i < 50 && small.server.connectionCount > 0; i++) await sleep(20);
    await assertServes(small.socketPath);
  } finally {
    await small.close();
    await cleanup();
  }
});

test('a client flooding a stalled handshake is held back by TCP, not buffered by the server', async () => {
  const { dir, cleanup } = await tempDir();
  const small = await startServer(dir, { disk: MiB }, { handshakeTimeoutMs: 3000 });
  try {
    const c = await RawConn.open(small.socketPath);
    c.release();
    c.socket.pause(); // never read replies, so the server's writes stall
    c.write(u32(NBD_FLAG_C_FIXED_NEWSTYLE));
    const list = encodeOptionHeader(NbdOpt.LIST, Buffer.alloc(0));
    const flood = Buffer.concat(Array.from({ length: 64 * 1024 }, () => list)); // 1 MiB of LIST options
    for (let i = 0; i < 32; i++) c.write(flood);
    await sleep(800);
    assert.ok(
      c.socket.writableLength > 16 * MiB,
      `the server read ${32 - c.socket.writableLength / MiB} MiB of a stalled handshake into memory`,
    );
    assert.ok(await c.waitClosed(5000), 'the stalled handshake outlived its timeout');
    c.destroy();
  } finally {
    await small.close();
    await cleanup();
  }
});

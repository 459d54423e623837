// TCP with forced TLS (TLS 1.3, client certificates required): real peers (nbdinfo, qemu-img) with x509
// certificates made by openssl, our client, and the forced-TLS rules on a raw socket, including the
// CVE-2021-3716 shape (STRUCTURED_REPLY before STARTTLS must not survive the upgrade).
import assert from 'node:assert/strict';
import { mkdir, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, test } from 'node:test';
import { NbdServer } from '../../src/host/nbd/nbd-server.js';
import { MemoryBlockDevice } from '../../src/host/block-device/memory.block-device.js';
import { NbdClient } from '../../src/guest/nbd-client.js';
import { isSecondsiteError } from '../../src/domain/errors.js';
import {
  NBD_FLAG_SEND_DF,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NbdCmd,
  NbdOpt,
  NbdRep,
} from '../../src/protocol/nbd/nbd-constants.js';
import { encodeGoPayload, encodeOptionHeader } from '../../src/protocol/nbd/nbd-handshake.codec.js';
import { MiB, RawConn, makeCerts, run, runOk, tempDir } from './nbd-test-kit.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let certs: Awaited<ReturnType<typeof makeCerts>>;
let server: NbdServer;
let port = 0;
const device = new MemoryBlockDevice({ sizeBytes: 16 * MiB });

before(async () => {
  tmp = await tempDir();
  certs = await makeCerts(tmp.dir);
  server = new NbdServer();
  server.addExport('disk', device);
  const addr = await server.listenTcp('127.0.0.1', 0, {
    cert: certs.serverCert,
    key: certs.serverKey,
    ca: certs.ca,
  });
  port = addr.port;
});

after(async () => {
  await server.close();
  await tmp.cleanup();
});

const tlsUri = (dir: string): string => `nbds://localhost:${port}/disk?tls-certificates=${dir}`;

test('nbdinfo over TLS with client certificates', async () => {
  const out = await runOk('nbdinfo', ['--json', tlsUri(certs.clientDir)]);
  const info = JSON.parse(out) as { TLS: boolean; exports: { 'export-size': number }[] };
  assert.equal(info.TLS, true);
  assert.equal(info.exports[0]?.['export-size'], 16 * MiB);
});

test('qemu-img and qemu-io over TLS with x509 credentials', async () => {
  const object = `tls-creds-x509,id=tls0,endpoint=client,dir=${certs.clientDir}`;
  const opts = `driver=nbd,server.type=inet,server.host=localhost,server.port=${port},export=disk,tls-creds=tls0`;
  const info = JSON.parse(
    await runOk('qemu-img', ['info', '--output=json', '--object', object, '--image-opts', opts]),
  ) as { 'virtual-size': number };
  assert.equal(info['virtual-size'], 16 * MiB);
  await runOk('qemu-io', ['--object', object, '--image-opts', opts, '-c', 'write -P 0x42 0 64k']);
  assert.ok((await device.read(0, 65536)).every((b) => b === 0x42));
});

test('our client over TLS', async () => {
  const c = await NbdClient.connect({
    host: '127.0.0.1',
    port,
    exportName: 'disk',
    tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey, servername: 'localhost' },
  });
  const data = Buffer.alloc(100_000, 7);
  await c.write(12345, data, { fua: true });
  assert.ok((await c.read(12345, data.length)).equals(data));
  await c.close();
});

test('TLS without a client certificate, or plaintext, is refused; the server keeps serving', async () => {
  const caOnly = join(tmp.dir, 'ca-only');
  await mkdir(caOnly);
  await copyFile(join(tmp.dir, 'ca-cert.pem'), join(caOnly, 'ca-cert.pem'));
  const noCert = await run('nbdinfo', [tlsUri(caOnly)], 15_000);
  assert.notEqual(noCert.code, 0, 'a client without a certificate was served');
  const plain = await run('nbdinfo', [`nbd://localhost:${port}/disk`], 15_000);
  assert.notEqual(plain.code, 0, 'a plaintext client was served');
  await assert.rejects(NbdClient.connect({ host: '127.0.0.1', port, exportName: 'disk' }), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_TLS_REQUIRED'),
  );
  await runOk('nbdinfo', ['--size', tlsUri(certs.clientDir)]);
});

test('forced TLS: options before STARTTLS get TLS_REQD, EXPORT_NAME disconnects', async () => {
  const raw = await RawConn.open({ port, host: '127.0.0.1' });
  await raw.greet();
  for (const opt of [
    NbdOpt.LIST,
    NbdOpt.GO,
    NbdOpt.INFO,
    NbdOpt.STRUCTURED_REPLY,
    NbdOpt.SET_META_CONTEXT,
    99,
  ]) {
    raw.sendOption(opt, opt === NbdOpt.GO ? encodeGoPayload('disk', []) : Buffer.alloc(0));
    const r = await raw.optionReply();
    assert.equal(r.replyType, NbdRep.ERR_TLS_REQD, `option ${opt}`);
  }
  raw.sendOption(NbdOpt.EXPORT_NAME, Buffer.from('disk'));
  assert.ok(await raw.waitClosed(), 'EXPORT_NAME without TLS must disconnect');
});

test('STRUCTURED_REPLY before STARTTLS is forgotten after the upgrade (CVE-2021-3716 shape)', async () => {
  const raw = await RawConn.open({ port, host: '127.0.0.1' });
  await raw.greet();
  raw.sendOption(NbdOpt.STRUCTURED_REPLY);
  assert.equal((await raw.optionReply()).replyType, NbdRep.ERR_TLS_REQD);
  raw.sendOption(NbdOpt.STARTTLS);
  assert.equal((await raw.optionReply()).replyType, NbdRep.ACK);
  raw.release();
  const tls = tlsConnect({
    socket: raw.socket,
    ca: certs.ca,
    cert: certs.clientCert,
    key: certs.clientKey,
    servername: 'localhost',
  });
  await new Promise<void>((resolve, reject) => {
    tls.once('secureConnect', resolve);
    tls.once('error', reject);
  });
  const conn = RawConn.wrap(tls);
  conn.sendOption(NbdOpt.GO, encodeGoPayload('disk', []));
  let flags = -1;
  for (;;) {
    const r = await conn.optionReply();
    if (r.replyType === NbdRep.INFO && r.data.readUInt16BE(0) === 0) flags = r.data.readUInt16BE(10);
    if (r.replyType === NbdRep.ACK) break;
    assert.equal(r.replyType, NbdRep.INFO);
  }
  assert.equal(flags & NBD_FLAG_SEND_DF, 0, 'DF advertised: structured replies leaked across STARTTLS');
  const req = Buffer.alloc(28);
  req.writeUInt32BE(NBD_REQUEST_MAGIC, 0);
  req.writeUInt16BE(NbdCmd.READ, 6);
  req.writeUInt32BE(77, 12);
  req.writeUInt32BE(512, 24);
  conn.write(req);
  const reply = await conn.read(16 + 512);
  assert.equal(
    reply.readUInt32BE(0),
    NBD_SIMPLE_REPLY_MAGIC,
    'the read was answered with a structured reply',
  );
  assert.equal(reply.readUInt32BE(12), 77);
  conn.destroy();
});

test('plaintext injected behind STARTTLS is never answered', async () => {
  const raw = await RawConn.open({ port, host: '127.0.0.1' });
  await raw.greet();
  raw.write(
    Buffer.concat([
      encodeOptionHeader(NbdOpt.STARTTLS, Buffer.alloc(0)),
      encodeOptionHeader(NbdOpt.GO, encodeGoPayload('disk', [])),
    ]),
  );
  const ack = await raw.optionReply();
  assert.equal(ack.replyType, NbdRep.ACK);
  assert.ok(await raw.waitClosed(), 'the server kept a connection with injected plaintext');
  await assert.rejects(raw.read(1, 100), 'the server answered the injected option');
  await runOk('nbdinfo', ['--size', tlsUri(certs.clientDir)]);
});

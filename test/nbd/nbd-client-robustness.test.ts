// Our client against misbehaving servers (scripted with node:net): a server that vanishes at every
// point of the handshake, answers with a bad greeting, or sends a reply for a cookie nobody asked for.
// The client must reject with a registered error, never hang or throw asynchronously (CVE-2021-20286).
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { NbdClient } from '../../src/guest/nbd-client.js';
import { isSecondsiteError } from '../../src/domain/errors.js';
import { NbdOpt, NbdRep, NBD_FLAG_FIXED_NEWSTYLE } from '../../src/protocol/nbd/nbd-constants.js';
import {
  encodeGreeting,
  encodeInfoExport,
  encodeOptionReply,
} from '../../src/protocol/nbd/nbd-handshake.codec.js';
import { encodeSimpleReply } from '../../src/protocol/nbd/nbd-transmission.codec.js';
import { tempDir } from './nbd-test-kit.js';

/** The bytes a well-behaved server sends for our client's default handshake (no meta context reply). */
function serverScript(): Buffer {
  return Buffer.concat([
    encodeGreeting(NBD_FLAG_FIXED_NEWSTYLE),
    encodeOptionReply(NbdOpt.STRUCTURED_REPLY, NbdRep.ERR_UNSUP),
    encodeInfoExport(NbdOpt.GO, 1 << 20, 1),
    encodeOptionReply(NbdOpt.GO, NbdRep.ACK),
  ]);
}

async function scripted(path: string, onConnect: (s: Socket) => void): Promise<Server> {
  const server = createServer((s) => {
    s.on('error', () => undefined);
    onConnect(s);
  });
  await new Promise<void>((r) => server.listen(path, r));
  return server;
}

test('a server that hangs up at any byte of its handshake makes connect() reject', async () => {
  const { dir, cleanup } = await tempDir();
  const script = serverScript();
  try {
    for (let cut = 0; cut < script.length; cut++) {
      const path = join(dir, `s${cut}.sock`);
      const server = await scripted(path, (s) => s.end(script.subarray(0, cut)));
      await assert.rejects(
        NbdClient.connect({ socketPath: path, connectTimeoutMs: 5000 }),
        (e) =>
          isSecondsiteError(e, 'SECONDSITE_ERR_CONNECTION_LOST') ||
          isSecondsiteError(e, 'SECONDSITE_ERR_PROTOCOL'),
        `cut at ${cut}`,
      );
      server.close();
    }
    // The full script connects (so the cuts above were meaningful).
    const path = join(dir, 'full.sock');
    const server = await scripted(path, (s) => s.write(script));
    const c = await NbdClient.connect({ socketPath: path });
    assert.equal(c.sizeBytes, 1 << 20);
    await c.close();
    server.close();
  } finally {
    await cleanup();
  }
});

test('a bad greeting or a reply for an unknown cookie is a protocol error for every pending request', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const bad = await scripted(join(dir, 'bad.sock'), (s) => s.write(Buffer.alloc(18, 0x55)));
    await assert.rejects(NbdClient.connect({ socketPath: join(dir, 'bad.sock') }), (e) =>
      isSecondsiteError(e, 'SECONDSITE_ERR_PROTOCOL'),
    );
    bad.close();
    let sock: Socket | null = null;
    const rogue = await scripted(join(dir, 'rogue.sock'), (s) => {
      sock = s;
      s.write(serverScript());
    });
    const c = await NbdClient.connect({ socketPath: join(dir, 'rogue.sock') });
    const p1 = c.read(0, 512);
    const p2 = c.write(0, Buffer.alloc(10));
    (sock as Socket | null)?.write(encodeSimpleReply(0, 0, 12345));
    for (const p of [p1, p2]) await assert.rejects(p, (e) => isSecondsiteError(e, 'SECONDSITE_ERR_PROTOCOL'));
    await assert.rejects(c.flush(), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_PROTOCOL'));
    (sock as Socket | null)?.destroy();
    rogue.close();
  } finally {
    await cleanup();
  }
});

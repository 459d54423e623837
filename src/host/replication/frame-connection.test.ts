/**
 * FrameConnection's receive bound over a real Unix socket: a side that does not take frames pauses the
 * socket by frames or by bytes queued, whichever comes first, so a peer's largest chunks cannot make it
 * hold 64 of them; taking the frames resumes the stream and every frame arrives, in order.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { HEADER_BYTES, relationshipKeyOf } from '../../protocol/replication/frame-codec.js';
import { newSessionContext } from '../../protocol/replication/frame-rules.js';
import { MAX_CHUNK_BYTES } from '../../protocol/replication/messages.js';
import { FrameConnection, MAX_QUEUED_BYTES, MAX_QUEUED_FRAMES } from './frame-connection.js';

const MiB = 1024 * 1024;

async function socketPair(path: string): Promise<{ accepted: Socket; client: Socket; close: () => void }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const acceptedP = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = createConnection(path);
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const accepted = await acceptedP;
  return {
    accepted,
    client,
    close: () => {
      client.destroy();
      accepted.destroy();
      server.close();
    },
  };
}

/** Waits until `read()` has not changed for `quietMs`; returns the last value. */
async function settled(read: () => number, quietMs: number): Promise<number> {
  let last = read();
  for (let quietSince = Date.now(); Date.now() - quietSince < quietMs;) {
    await new Promise((r) => setTimeout(r, 20));
    const now = read();
    if (now !== last) {
      last = now;
      quietSince = Date.now();
    }
  }
  return last;
}

for (const chunkBytes of [MAX_CHUNK_BYTES, 64 * 1024]) {
  test(`a side that takes no frames holds a bounded queue (${chunkBytes / 1024} KiB chunks); taking them resumes the stream`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'secondsite-frames-'));
    const pair = await socketPair(join(dir, 's.sock'));
    try {
      const key = relationshipKeyOf('vm1');
      const frames = chunkBytes === MAX_CHUNK_BYTES ? 12 : 3 * MAX_QUEUED_FRAMES;
      const rxCtx = newSessionContext('sender');
      rxCtx.relationshipKey = key;
      rxCtx.epoch = 1;
      rxCtx.disks = [{ diskId: 'd', sizeBytes: frames * chunkBytes }];
      const rx = new FrameConnection(pair.accepted, rxCtx, { relationshipKey: key, epoch: 1 });
      const txCtx = newSessionContext('receiver');
      txCtx.relationshipKey = key;
      txCtx.epoch = 1;
      const tx = new FrameConnection(pair.client, txCtx, { relationshipKey: key, epoch: 1 });
      const body = Buffer.alloc(chunkBytes, 0x5a);
      const dataChecksum = createHash('sha256').update(body).digest();
      let sent = 0;
      const sending = (async () => {
        for (let i = 0; i < frames; i++) {
          await tx.send({
            kind: 'data',
            diskIndex: 0,
            offsetBytes: i * chunkBytes,
            lengthBytes: chunkBytes,
            compression: 'none',
            dataChecksum,
            body,
          });
          sent++;
        }
      })();
      const queuedBytes = await settled(() => rx.queuedBytes, 300);
      const frameBytes = HEADER_BYTES + chunkBytes + 64; // the DATA fields are a few dozen bytes
      assert.ok(rx.queuedFrames < frames, `all ${frames} frames were queued: nothing paused the socket`);
      assert.ok(
        rx.queuedFrames <= MAX_QUEUED_FRAMES && queuedBytes < MAX_QUEUED_BYTES + frameBytes,
        `${rx.queuedFrames} frames, ${(queuedBytes / MiB).toFixed(1)} MiB queued`,
      );
      assert.ok(sent < frames, 'the sender finished although the receiver took nothing');
      for (let i = 0; i < frames; i++) {
        const { message } = await rx.expect('data', 10_000);
        assert.equal(message.offsetBytes, i * chunkBytes, `frame ${i} out of order`);
      }
      await sending;
      assert.equal(rx.queuedFrames, 0);
      assert.equal(rx.queuedBytes, 0);
    } finally {
      pair.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
}

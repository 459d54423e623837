/**
 * Bench-only replica host process, one of two modes:
 *
 *   --mode receiver --tls DIR --storage DIR [--counters FILE]
 *       The replica side of replication as the agent wires it: ReplicationReceiver (mutual TLS 1.3 on
 *       127.0.0.1, any free port) over a real PointStore per relationship in storage location "bench"
 *       (= --storage), authorizing host-a. On SIGTERM it stops, closes the stores and writes the
 *       receiver's counters (frames and bytes staged, zero bytes, points) as JSON to --counters.
 *
 *   --mode tls-sink --tls DIR   |   --mode tcp-sink
 *       A stage measured alone: per connection, reads an 8-byte big-endian length N, consumes N bytes,
 *       answers one byte and closes. tls-sink uses the replication TLS options (same suites, mutual).
 *
 * Prints {"ready":true,"port":N} on stdout once listening.
 */
import { writeFile } from 'node:fs/promises';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { parseArgs } from 'node:util';
import { loadTlsIdentity, replicationServerOptions } from '../../src/host/pki/tls-config.js';
import { PointStore } from '../../src/host/recovery-points/point-store.js';
import { AuthorizationList } from '../../src/host/replication/authorization-list.js';
import { ReplicationReceiver } from '../../src/host/replication/replication-receiver.js';
import { NodeStorage } from '../../src/host/storage/node-storage.js';
import { PRIMARY_HOST, REPLICA_HOST } from '../lib/bench-pki.js';

const { values } = parseArgs({
  options: {
    mode: { type: 'string' },
    tls: { type: 'string' },
    storage: { type: 'string' },
    counters: { type: 'string' },
  },
});

function ready(port: number): void {
  process.stdout.write(`${JSON.stringify({ ready: true, port, pid: process.pid })}\n`);
}

function onStop(fn: () => Promise<void>): void {
  const stop = (): void => {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    void fn().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function sink(socket: Socket): void {
  let expected = -1;
  let got = 0;
  let header = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    if (expected < 0) {
      header = Buffer.concat([header, chunk]);
      if (header.length < 8) return;
      expected = Number(header.readBigUInt64BE(0));
      got = header.length - 8;
    } else got += chunk.length;
    if (got >= expected) socket.end(Buffer.from([1]));
  });
  socket.on('error', () => socket.destroy());
}

if (values.mode === 'receiver') {
  if (values.tls === undefined || values.storage === undefined)
    throw new Error('--tls and --storage are required');
  const storage = new NodeStorage();
  const stores: PointStore[] = [];
  const storageDir = values.storage;
  const authorization = new AuthorizationList([
    { primaryHostId: PRIMARY_HOST, storageLocation: 'bench', trustGroup: 'bench' },
  ]);
  const receiver = new ReplicationReceiver({
    tls: await loadTlsIdentity(values.tls, REPLICA_HOST),
    host: '127.0.0.1',
    port: 0,
    authorization: () => authorization,
    storageLocations: { bench: storageDir },
    openStore: async (req) => {
      const store = await PointStore.open({
        storage,
        storageDir: req.storageDir,
        relationshipId: req.relationshipId,
        clock: { wallMs: () => Date.now(), monotonicMs: () => performance.now() },
      });
      stores.push(store);
      return store;
    },
  });
  const { port } = await receiver.start();
  ready(port);
  onStop(async () => {
    await receiver.stop();
    for (const s of stores) await s.close();
    if (values.counters !== undefined) await writeFile(values.counters, JSON.stringify(receiver.counters));
  });
} else if (values.mode === 'tls-sink' || values.mode === 'tcp-sink') {
  const server =
    values.mode === 'tls-sink'
      ? createTlsServer(replicationServerOptions(await loadTlsIdentity(values.tls ?? '', REPLICA_HOST)), sink)
      : createTcpServer(sink);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  ready((server.address() as AddressInfo).port);
  onStop(() => new Promise<void>((r) => server.close(() => r())));
} else {
  process.stderr.write('usage: replica-receiver.server.ts --mode receiver|tls-sink|tcp-sink ...\n');
  process.exit(2);
}

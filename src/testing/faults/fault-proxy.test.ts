import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaultProxy, type ProxyEndpoint } from './fault-proxy.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

/** A server that echoes everything and records what it received. */
async function echoServer(
  listen: ProxyEndpoint = { port: 0 },
): Promise<{ endpoint: ProxyEndpoint; received: () => number; server: Server }> {
  let received = 0;
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('data', (d: Buffer) => {
      received += d.length;
      s.write(d);
    });
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) =>
    'path' in listen ? server.listen(listen.path, resolve) : server.listen(0, '127.0.0.1', resolve),
  );
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const a = server.address();
  const endpoint =
    typeof a === 'string' ? { path: a } : { host: '127.0.0.1', port: (a as { port: number }).port };
  return { endpoint, received: () => received, server };
}

async function proxyTo(target: ProxyEndpoint, listen?: ProxyEndpoint): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ target, ...(listen ? { listen } : {}) });
  cleanups.push(() => proxy.close());
  return proxy;
}

interface Client {
  socket: Socket;
  bytes: () => number;
  waitFor: (n: number, timeoutMs?: number) => Promise<number>;
  closed: Promise<string>;
}

async function client(endpoint: ProxyEndpoint): Promise<Client> {
  const socket =
    'path' in endpoint ? connect(endpoint.path) : connect(endpoint.port, endpoint.host ?? '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let bytes = 0;
  const waiters: Array<() => void> = [];
  socket.on('data', (d: Buffer) => {
    bytes += d.length;
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise<string>((resolve) => {
    let error = 'closed';
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.on('close', () => resolve(error));
  });
  cleanups.push(() => Promise.resolve(void socket.destroy()));
  const waitFor = async (n: number, timeoutMs = 3000): Promise<number> => {
    const deadline = Date.now() + timeoutMs;
    while (bytes < n && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 20);
      });
    }
    return bytes;
  };
  return { socket, bytes: () => bytes, waitFor, closed };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('passes bytes both ways and counts them', async () => {
  const echo = await echoServer();
  const proxy = await proxyTo(echo.endpoint);
  const c = await client(proxy.address);
  c.socket.write(Buffer.alloc(100_000, 7));
  assert.equal(await c.waitFor(100_000), 100_000);
  assert.equal(proxy.counters.upstreamBytes, 100_000);
  assert.equal(proxy.counters.downstreamBytes, 100_000);
  assert.equal(proxy.counters.connectionsOpen, 1);
  c.socket.end();
  assert.equal(await c.closed, 'closed');
  await sleep(50);
  assert.equal(proxy.counters.connectionsOpen, 0);
});

test('latency delays each direction', async () => {
  const echo = await echoServer();
  const proxy = await proxyTo(echo.endpoint);
  proxy.set('both', { latencyMs: 150 });
  const c = await client(proxy.address);
  const t0 = performance.now();
  c.socket.write('ping');
  assert.equal(await c.waitFor(4), 4);
  assert.ok(performance.now() - t0 >= 290, `round trip took ${performance.now() - t0} ms`);
});

test('bandwidth cap slows a transfer', async () => {
  const echo = await echoServer();
  const proxy = await proxyTo(echo.endpoint);
  proxy.set('upstream', { bandwidthBytesPerSecond: 100_000 });
  const c = await client(proxy.address);
  const t0 = performance.now();
  c.socket.write(Buffer.alloc(50_000));
  assert.equal(await c.waitFor(50_000, 5000), 50_000);
  const ms = performance.now() - t0;
  assert.ok(ms >= 400 && ms < 10_000, `50 kB at 100 kB/s took ${ms} ms`);
});

test('blackhole swallows data but keeps the connection; pass() lets new data through', async () => {
  const echo = await echoServer();
  const proxy = await proxyTo(echo.endpoint);
  const c = await client(proxy.address);
  proxy.blackhole('downstream');
  c.socket.write('lost');
  await sleep(200);
  assert.equal(c.bytes(), 0);
  assert.equal(echo.received(), 4, 'upstream still flows');
  assert.equal(proxy.counters.droppedBytes, 4);
  proxy.pass();
  c.socket.write('seen');
  assert.equal(await c.waitFor(4), 4);
  assert.equal(c.socket.destroyed, false);
});

test('cutAfterBytes forwards exactly N bytes, then resets both sides', async () => {
  const echo = await echoServer();
  const proxy = await proxyTo(echo.endpoint);
  proxy.set('upstream', { cutAfterBytes: 1000 });
  const c = await client(proxy.address);
  c.socket.write(Buffer.alloc(5000));
  const how = await c.closed;
  assert.match(how, /ECONNRESET|closed/);
  await sleep(50);
  assert.equal(echo.received(), 1000);
  assert.equal(proxy.counters.upstreamBytes, 1000);
});

test('pause holds data in order until resume', async () => {
  const echo = await echoServer();
  const proxy = await proxyTo(echo.endpoint);
  const c = await client(proxy.address);
  const got: Buffer[] = [];
  c.socket.on('data', (d: Buffer) => got.push(d));
  proxy.pause('upstream');
  for (let i = 0; i < 10; i++) c.socket.write(Buffer.from([i]));
  await sleep(150);
  assert.equal(echo.received(), 0);
  proxy.resume('upstream');
  assert.equal(await c.waitFor(10), 10);
  assert.deepEqual([...Buffer.concat(got)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('resetConnections and refuseNew', async () => {
  const echo = await echoServer();
  const proxy = await proxyTo(echo.endpoint);
  const c = await client(proxy.address);
  c.socket.write('x');
  await c.waitFor(1);
  proxy.resetConnections();
  assert.equal(await c.closed, 'ECONNRESET');
  proxy.refuseNew(true);
  const refused = await new Promise<string>((resolve) => {
    const s = connect(proxy.port, '127.0.0.1');
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.on('close', () => resolve('closed'));
  });
  assert.match(refused, /ECONNRESET|closed/);
  proxy.refuseNew(false);
  const e = await client(proxy.address);
  e.socket.write('ok');
  assert.equal(await e.waitFor(2), 2);
});

test('works over Unix sockets', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'secondsite-proxy-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const echo = await echoServer({ path: join(dir, 'echo.sock') });
  const proxy = await proxyTo(echo.endpoint, { path: join(dir, 'proxy.sock') });
  const c = await client(proxy.address);
  c.socket.write('unix');
  assert.equal(await c.waitFor(4), 4);
});

test('flipByteAtOffset corrupts one byte of the stream; sliceBytes delivers in pieces', async () => {
  const echo = await echoServer();
  const proxy = await proxyTo(echo.endpoint);
  proxy.set('upstream', { flipByteAtOffset: 5 });
  const c = await client(proxy.address);
  const got: Buffer[] = [];
  c.socket.on('data', (d: Buffer) => got.push(d));
  c.socket.write(Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
  assert.equal(await c.waitFor(10), 10);
  assert.deepEqual([...Buffer.concat(got)], [0, 1, 2, 3, 4, 5 ^ 0xff, 6, 7, 8, 9]);

  proxy.pass();
  proxy.set('downstream', { sliceBytes: 100 });
  const d = await client(proxy.address);
  let events = 0;
  d.socket.on('data', () => events++);
  d.socket.write(Buffer.alloc(1000));
  assert.equal(await d.waitFor(1000), 1000);
  assert.ok(events >= 5, `1000 bytes arrived in ${events} reads`);
});

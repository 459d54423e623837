// Shared helpers for the NBD tests: a server on a Unix socket in a temp dir, child-process peers
// (qemu-io, qemu-img, nbdinfo, nbdcopy, nbdkit) run asynchronously so the in-process server keeps
// serving, raw-socket helpers for malformed-input tests, and x509 material made with openssl.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdServer, type NbdServerOptions } from '../../src/host/nbd/nbd-server.js';
import { MemoryBlockDevice } from '../../src/host/block-device/memory.block-device.js';
import { NbdClient } from '../../src/guest/nbd-client.js';
import { encodeOptionHeader, decodeOptionReplyHeader } from '../../src/protocol/nbd/nbd-handshake.codec.js';
import { NBD_FLAG_C_FIXED_NEWSTYLE, NBD_FLAG_C_NO_ZEROES } from '../../src/protocol/nbd/nbd-constants.js';

export const MiB = 1024 * 1024;

export async function tempDir(
  prefix = 'secondsite-nbd-',
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface TestServer {
  server: NbdServer;
  socketPath: string;
  uri: (exportName?: string) => string;
  devices: Map<string, MemoryBlockDevice>;
  close: () => Promise<void>;
}

/** An NbdServer on a Unix socket in `dir` with memory exports (name -> size in bytes). */
export async function startServer(
  dir: string,
  exportSizes: Record<string, number>,
  options: NbdServerOptions = {},
  readOnly: string[] = [],
): Promise<TestServer> {
  const server = new NbdServer(options);
  const devices = new Map<string, MemoryBlockDevice>();
  for (const [name, size] of Object.entries(exportSizes)) {
    const d = new MemoryBlockDevice({ sizeBytes: size });
    devices.set(name, d);
    server.addExport(name, d, { readOnly: readOnly.includes(name) });
  }
  const socketPath = join(dir, 'nbd.sock');
  await server.listenUnix(socketPath);
  return {
    server,
    socketPath,
    devices,
    uri: (name = 'disk') => `nbd+unix:///${name}?socket=${socketPath}`,
    close: () => server.close(),
  };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a peer asynchronously (never spawnSync: the server under test lives in this process). */
export function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { timeout: timeoutMs, maxBuffer: 64 * MiB, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs a peer and fails with its output unless it exits 0. */
export async function runOk(cmd: string, args: string[], timeoutMs = 30_000): Promise<string> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Starts `nbdkit -f -U sock memory size=N` and waits until it answers. */
export async function startNbdkitMemory(
  dir: string,
  sizeBytes: number,
): Promise<{ socketPath: string; stop: () => Promise<void> }> {
  const socketPath = join(dir, 'nbdkit.sock');
  const child: ChildProcess = spawn('nbdkit', ['-f', '-U', socketPath, 'memory', `size=${sizeBytes}`], {
    stdio: 'ignore',
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  };
  for (let i = 0; i < 100; i++) {
    const r = await run('nbdinfo', ['--size', `nbd+unix:///?socket=${socketPath}`], 5000);
    if (r.code === 0) return { socketPath, stop };
    await sleep(50);
  }
  await stop();
  throw new Error('nbdkit did not start');
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A raw client socket with exact reads, for malformed-input tests. */
export class RawConn {
  private chunks: Buffer[] = [];
  private buffered = 0;
  closed = false;
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.buffered += c.length;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  /** Wraps an already connected socket (e.g. a TLSSocket after STARTTLS). */
  static wrap(socket: Socket): RawConn {
    return new RawConn(socket);
  }

  /** Stops reading on this wrapper and returns nothing buffered (for STARTTLS upgrades). */
  release(): void {
    this.socket.removeAllListeners('data');
  }

  static open(path: string | { port: number; host: string }): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = typeof path === 'string' ? connect(path) : connect(path.port, path.host);
      s.once('connect', () => resolve(new RawConn(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  write(b: Buffer): void {
    this.socket.write(b);
  }

  /** Reads exactly n bytes, or rejects if the server closes or nothing comes within timeoutMs. */
  async read(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buffered < n) {
      if (this.closed) throw new Error(`connection closed after ${this.buffered} of ${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes (have ${this.buffered})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [all.subarray(n)];
    this.buffered -= n;
    return all.subarray(0, n);
  }

  /** Resolves true when the server closes the connection within timeoutMs. */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return true;
  }

  /** Reads the 18-byte greeting and answers with fixed-newstyle + no-zeroes client flags. */
  async greet(): Promise<void> {
    await this.read(18);
    const f = Buffer.alloc(4);
    f.writeUInt32BE(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES, 0);
    this.write(f);
  }

  sendOption(option: number, payload: Buffer = Buffer.alloc(0)): void {
    this.write(encodeOptionHeader(option, payload));
  }

  /** Reads one option reply: its type and data. */
  async optionReply(): Promise<{ option: number; replyType: number; data: Buffer }> {
    const h = decodeOptionReplyHeader(await this.read(20));
    if (!h.magicOk) throw new Error('bad option reply magic');
    return { option: h.option, replyType: h.replyType, data: await this.read(h.lengthBytes) };
  }

  /** Reads option replies until one that is not NBD_REP_INFO/SERVER/META_CONTEXT; returns all types. */
  async finalReply(): Promise<number[]> {
    const types: number[] = [];
    for (;;) {
      const r = await this.optionReply();
      types.push(r.replyType);
      if (r.replyType !== 2 && r.replyType !== 3 && r.replyType !== 4) return types;
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Proves the server still serves: a fresh client writes and reads back through it. */
export async function assertServes(socketPath: string, exportName = 'disk'): Promise<void> {
  const c = await NbdClient.connect({ socketPath, exportName });
  try {
    const data = Buffer.alloc(4096, 0x5a);
    await c.write(8192, data);
    const back = await c.read(8192, 4096);
    if (!back.equals(data)) throw new Error('the server returned different data');
  } finally {
    await c.close();
  }
}

/** x509 material for TLS tests, made with openssl: a CA, a server cert for localhost, a client cert. */
export async function makeCerts(dir: string): Promise<{
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  clientDir: string;
}> {
  const p = (f: string): string => join(dir, f);
  await runOk('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    p('ca-key.pem'),
    '-out',
    p('ca-cert.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=secondsite test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const issue = async (name: string, subj: string, ext: string): Promise<void> => {
    await runOk('openssl', [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      p(`${name}-key.pem`),
      '-out',
      p(`${name}.csr`),
      '-subj',
      subj,
    ]);
    await writeFile(p(`${name}.ext`), ext);
    await runOk('openssl', [
      'x509',
      '-req',
      '-in',
      p(`${name}.csr`),
      '-CA',
      p('ca-cert.pem'),
      '-CAkey',
      p('ca-key.pem'),
      '-CAcreateserial',
      '-out',
      p(`${name}-cert.pem`),
      '-days',
      '2',
      '-extfile',
      p(`${name}.ext`),
    ]);
  };
  await issue(
    'server',
    '/CN=localhost',
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n',
  );
  await issue(
    'client',
    '/CN=secondsite-test-client',
    'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n',
  );
  const { readFile, mkdir, copyFile } = await import('node:fs/promises');
  const clientDir = p('client');
  await mkdir(clientDir);
  await copyFile(p('ca-cert.pem'), join(clientDir, 'ca-cert.pem'));
  await copyFile(p('client-cert.pem'), join(clientDir, 'client-cert.pem'));
  await copyFile(p('client-key.pem'), join(clientDir, 'client-key.pem'));
  const read = (f: string): Promise<string> => readFile(p(f), 'utf8');
  return {
    ca: await read('ca-cert.pem'),
    serverCert: await read('server-cert.pem'),
    serverKey: await read('server-key.pem'),
    clientCert: await read('client-cert.pem'),
    clientKey: await read('client-key.pem'),
    clientDir,
  };
}

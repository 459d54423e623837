/**
 * NbdServer: serves named exports (name -> BlockDevice, looked up in a Map, never joined to a path) over
 * NBD fixed newstyle. A Unix-socket listener runs without TLS (local hypervisor only); a TCP listener
 * always runs FORCEDTLS (TLS 1.3 minimum, client certificates required and verified against the CA).
 *
 * Resource limits (CVE-2024-7409 shape): at most `maxConnections` sockets, at most `maxHandshakes` of
 * them still negotiating, each with a `handshakeTimeoutMs` deadline; excess sockets are destroyed at
 * accept without reading a byte. Design: docs/design/nbd-server.md.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import { unlink } from 'node:fs/promises';
import { SecondsiteError } from '../../domain/errors.js';
import { NBD_MAX_STRING_BYTES } from '../../protocol/nbd/nbd-constants.js';
import type { ExportCatalog, ExportInfo, TlsMode } from '../../protocol/nbd/nbd-option.machine.js';
import type { BlockDevice } from '../block-device/block-device.js';
import { silentLogger, type Logger } from '../../observability/logger.js';
import { HandshakeRun, type HandshakeOutcome } from './nbd-handshake.runner.js';
import { NbdTransmission } from './nbd-transmission.js';

export interface NbdServerOptions {
  /** Deadline from accept to the end of option haggling, TLS handshake included. Default 10 000. */
  readonly handshakeTimeoutMs?: number;
  /** Most sockets open at once (any phase). Default 64. */
  readonly maxConnections?: number;
  /** Most sockets still in the handshake. Default 16. */
  readonly maxHandshakes?: number;
  /** Per connection: pause reading above this many requests in flight. Default 128. */
  readonly maxInFlightRequests?: number;
  readonly log?: Logger;
}

export interface NbdExportOptions {
  /** Serve read-only even if the device is writable (writes get EPERM). */
  readonly readOnly?: boolean;
  readonly description?: string;
  /** Advertise NBD_FLAG_CAN_MULTI_CONN. Default true: all connections share this one device object. */
  readonly multiConn?: boolean;
}

/** PEM material for the TCP listener. */
export interface NbdTlsOptions {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** CA that signed the allowed client certificates. */
  readonly ca: string | Buffer;
}

interface Entry {
  info: ExportInfo;
  device: BlockDevice;
}

interface Connection {
  socket: Socket;
  handshake: HandshakeRun | null;
  transmission: NbdTransmission | null;
  timer: NodeJS.Timeout | null;
  /** Set once in transmission. */
  exportName: string | null;
}

export class NbdServer implements ExportCatalog {
  private readonly exports = new Map<string, Entry>();
  private readonly connections = new Set<Connection>();
  private readonly listeners: { server: Server; unixPath?: string }[] = [];
  private handshaking = 0;
  private closing = false;
  private readonly handshakeTimeoutMs: number;
  private readonly maxConnections: number;
  private readonly maxHandshakes: number;
  private readonly log: Logger;

  constructor(private readonly options: NbdServerOptions = {}) {
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
    this.maxConnections = options.maxConnections ?? 64;
    this.maxHandshakes = options.maxHandshakes ?? 16;
    this.log = options.log ?? silentLogger;
    for (const [k, v] of Object.entries({
      handshakeTimeoutMs: this.handshakeTimeoutMs,
      maxConnections: this.maxConnections,
      maxHandshakes: this.maxHandshakes,
    }))
      if (!Number.isSafeInteger(v) || v <= 0)
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `NBD server option ${k}=${v} must be a positive integer`,
          {
            [k]: v,
          },
        );
  }

  /** Adds an export. The name is a lookup key only (UTF-8, <= 4096 bytes, no NUL). */
  addExport(name: string, device: BlockDevice, options: NbdExportOptions = {}): void {
    if (Buffer.byteLength(name, 'utf8') > NBD_MAX_STRING_BYTES || name.includes('\0'))
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        'an NBD export name must be at most 4096 bytes of UTF-8 without NUL; choose a shorter name',
        { name: name.slice(0, 64) },
      );
    if (this.exports.has(name))
      throw new SecondsiteError(
        'SECONDSITE_ERR_ALREADY_EXISTS',
        `NBD export '${name}' already exists; remove it first`,
        {
          name,
        },
      );
    this.exports.set(name, {
      device,
      info: {
        name,
        sizeBytes: device.sizeBytes,
        readOnly: (options.readOnly ?? false) || device.readOnly,
        multiConn: options.multiConn ?? true,
        ...(options.description !== undefined ? { description: options.description } : {}),
      },
    });
  }

  /** Removes an export from the table; connections already using it keep their device. */
  removeExport(name: string): boolean {
    return this.exports.delete(name);
  }

  /**
   * Removes the export and hard-disconnects every client using it, then waits until none of their
   * device calls is in flight: afterwards the caller may close the BlockDevice (disk detach, failover
   * fencing). Returns how many connections were closed.
   */
  async disconnectExport(name: string): Promise<number> {
    this.exports.delete(name);
    const pending: Promise<void>[] = [];
    for (const c of this.connections) {
      if (c.exportName !== name || !c.transmission) continue;
      c.socket.destroy();
      pending.push(c.transmission.idle());
    }
    await Promise.all(pending);
    return pending.length;
  }

  lookup(name: string): ExportInfo | undefined {
    return this.exports.get(name)?.info;
  }

  names(): readonly string[] {
    return [...this.exports.keys()];
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Listens on a Unix socket (NOTLS). A stale socket file at `path` is replaced. */
  async listenUnix(path: string): Promise<void> {
    await unlink(path).catch(() => undefined);
    const server = createServer((socket) => this.accept(socket, 'none'));
    await listen(server, () => server.listen(path));
    this.listeners.push({ server, unixPath: path });
  }

  /** Listens on TCP with forced TLS. Returns the bound address (use port 0 for any free port). */
  async listenTcp(host: string, port: number, tls: NbdTlsOptions): Promise<AddressInfo> {
    // Fail at listen time, not at the first STARTTLS, if the PEM material is unusable.
    createSecureContext({ cert: tls.cert, key: tls.key, ca: tls.ca, minVersion: 'TLSv1.3' });
    const material = { cert: tls.cert, key: tls.key, ca: tls.ca };
    const server = createServer((socket) => this.accept(socket, 'forced', material));
    await listen(server, () => server.listen(port, host));
    this.listeners.push({ server });
    return server.address() as AddressInfo;
  }

  /** Stops listening, closes every connection, and waits for their device calls to finish. */
  async close(): Promise<void> {
    this.closing = true;
    // net.Server.close() waits for open connections, so stop accepting, then end the connections.
    const stopped = this.listeners.map(({ server }) => new Promise<void>((r) => server.close(() => r())));
    const pending: Promise<void>[] = [];
    for (const c of this.connections) {
      c.handshake?.abort('the NBD server is shutting down');
      c.socket.destroy();
      if (c.transmission) pending.push(c.transmission.idle());
    }
    await Promise.all(stopped);
    for (const l of this.listeners) if (l.unixPath) await unlink(l.unixPath).catch(() => undefined);
    this.listeners.length = 0;
    await Promise.all(pending);
  }

  private accept(socket: Socket, tlsMode: TlsMode, tls?: NbdTlsOptions): void {
    socket.on('error', (e) => this.log.debug('nbd socket error', { err: e }));
    if (
      this.closing ||
      this.connections.size >= this.maxConnections ||
      this.handshaking >= this.maxHandshakes
    ) {
      this.log.warn('nbd connection refused: limit reached', {
        connections: this.connections.size,
        handshaking: this.handshaking,
      });
      socket.destroy();
      return;
    }
    const handshake = new HandshakeRun(socket, {
      tlsMode,
      catalog: this,
      ...(tls ? { tls } : {}),
    });
    const conn: Connection = { socket, handshake, transmission: null, timer: null, exportName: null };
    this.connections.add(conn);
    this.handshaking++;
    conn.timer = setTimeout(() => handshake.abort('the NBD handshake timed out'), this.handshakeTimeoutMs);
    socket.once('close', () => {
      if (conn.handshake === null) this.connections.delete(conn);
    });
    void handshake.run().then(
      (outcome) => {
        try {
          this.afterHandshake(conn, outcome);
        } catch (e) {
          this.log.error('nbd connection setup failed', { err: e });
          conn.socket.destroy();
          this.connections.delete(conn);
        }
      },
      (e: unknown) => {
        this.log.error('nbd handshake failed unexpectedly', { err: e });
        socket.destroy();
        this.connections.delete(conn);
      },
    );
  }

  private afterHandshake(conn: Connection, outcome: HandshakeOutcome): void {
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = null;
    conn.handshake = null;
    this.handshaking--;
    if (!outcome.ok) {
      this.log.debug('nbd handshake ended', { reason: outcome.reason });
      this.connections.delete(conn);
      return;
    }
    const entry = outcome.session.export ? this.exports.get(outcome.session.export.name) : undefined;
    if (!entry || this.closing || outcome.socket.destroyed) {
      outcome.socket.destroy();
      this.connections.delete(conn);
      return;
    }
    conn.socket = outcome.socket;
    const s = outcome.session;
    const transmission = new NbdTransmission(
      outcome.socket,
      entry.device,
      {
        structuredReplies: s.structuredReplies,
        readOnly: entry.info.readOnly,
        blockStatusSelected: s.metaContext !== null && s.metaContext.ids.length > 0,
      },
      {
        ...(this.options.maxInFlightRequests !== undefined
          ? { maxInFlightRequests: this.options.maxInFlightRequests }
          : {}),
        onProtocolError: (reason) => this.log.warn('nbd client broke the protocol', { reason }),
      },
    );
    conn.transmission = transmission;
    conn.exportName = entry.info.name;
    outcome.socket.on('error', (e) => this.log.debug('nbd socket error', { err: e }));
    outcome.socket.once('close', () => this.connections.delete(conn));
    transmission.start(outcome.leftover);
  }
}

function listen(server: Server, start: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      resolve();
    });
    start();
  });
}

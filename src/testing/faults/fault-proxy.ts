/**
 * `FaultProxy`: a TCP / Unix-socket proxy between two components, driven by the test (data-safety.md
 * 3.2; toxiproxy's toxics in-process, as etcd's peer proxy does). Every accepted connection gets its own
 * connection to the target; bytes are forwarded per direction ('upstream' = client -> target,
 * 'downstream' = target -> client) through these faults, changeable at any time:
 *
 *   latencyMs, jitterMs     delay each chunk (order kept) by latency +- jitter
 *   bandwidthBytesPerSecond cap throughput
 *   blackhole               swallow data, keep the connection open (a timeout for the peer)
 *   cutAfterBytes           forward this many bytes per connection, then reset both sides
 *   paused                  hold data (buffered, with backpressure) until unpaused
 *   flipByteAtOffset        invert one byte of the stream (per connection)
 *   sliceBytes              deliver in small pieces, 1 ms apart
 *
 * plus `resetConnections()` (RST every open connection), `refuseNew(true)` (reset new connections at
 * once) and counters of bytes per direction. Faults apply to data arriving after the change (latency)
 * or immediately (pause, blackhole, cut, bandwidth). Always `close()` it (e.g. in `after`).
 *
 *   const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port } });
 *   connect(proxy.port) ...; proxy.set('downstream', { blackhole: true }); ...; await proxy.close();
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Rng } from '../../domain/random.js';

export type ProxyDirection = 'upstream' | 'downstream';

export interface DirectionFaults {
  latencyMs: number;
  jitterMs: number;
  /** 0 = unlimited. */
  bandwidthBytesPerSecond: number;
  blackhole: boolean;
  /** null = never cut. Per connection. */
  cutAfterBytes: number | null;
  paused: boolean;
  /** Invert the byte at this offset of each connection's stream in this direction; null = never. */
  flipByteAtOffset: number | null;
  /** Forward in pieces of at most this many bytes, 1 ms apart (0 = off): exercises frame reassembly. */
  sliceBytes: number;
}

export type ProxyEndpoint = { host?: string; port: number } | { path: string };

export interface ProxyCounters {
  /** Bytes delivered to the other side, per direction, over all connections. */
  upstreamBytes: number;
  downstreamBytes: number;
  /** Bytes swallowed by blackhole or cut. */
  droppedBytes: number;
  connectionsAccepted: number;
  connectionsOpen: number;
}

const PASS: DirectionFaults = {
  latencyMs: 0,
  jitterMs: 0,
  bandwidthBytesPerSecond: 0,
  blackhole: false,
  cutAfterBytes: null,
  paused: false,
  flipByteAtOffset: null,
  sliceBytes: 0,
};
const HIGH_WATER_BYTES = 1024 * 1024;

export class FaultProxy {
  readonly counters: ProxyCounters = {
    upstreamBytes: 0,
    downstreamBytes: 0,
    droppedBytes: 0,
    connectionsAccepted: 0,
    connectionsOpen: 0,
  };
  private readonly faults: Record<ProxyDirection, DirectionFaults> = {
    upstream: { ...PASS },
    downstream: { ...PASS },
  };
  private readonly connections = new Set<ProxyConnection>();
  private refusing = false;
  private readonly rng: Rng;

  private constructor(
    private readonly server: Server,
    private readonly target: ProxyEndpoint,
    seed: number,
  ) {
    this.rng = new Rng(seed);
  }

  /** Starts listening (default 127.0.0.1 on a free port) and forwarding to `target`. */
  static async start(options: {
    target: ProxyEndpoint;
    listen?: ProxyEndpoint;
    seed?: number;
  }): Promise<FaultProxy> {
    const server = createServer({ allowHalfOpen: true });
    const proxy = new FaultProxy(server, options.target, options.seed ?? 1);
    server.on('connection', (socket) => proxy.accept(socket));
    const listen = options.listen ?? { host: '127.0.0.1', port: 0 };
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if ('path' in listen) server.listen(listen.path, resolve);
      else server.listen(listen.port, listen.host ?? '127.0.0.1', resolve);
    });
    return proxy;
  }

  /** The TCP port clients connect to (throws for a Unix-socket proxy). */
  get port(): number {
    const a = this.server.address();
    if (a === null || typeof a === 'string')
      throw new Error('this proxy listens on a Unix socket, not a port');
    return a.port;
  }

  /** Where clients connect. */
  get address(): ProxyEndpoint {
    const a = this.server.address();
    if (typeof a === 'string') return { path: a };
    if (a === null) throw new Error('the proxy is not listening');
    return { host: a.address, port: a.port };
  }

  /** Changes faults for one direction or both; unspecified fields keep their value. */
  set(direction: ProxyDirection | 'both', faults: Partial<DirectionFaults>): void {
    for (const d of direction === 'both' ? (['upstream', 'downstream'] as const) : [direction]) {
      Object.assign(this.faults[d], faults);
    }
    for (const c of this.connections) c.kick();
  }

  /** Current faults of a direction (a copy). */
  get(direction: ProxyDirection): DirectionFaults {
    return { ...this.faults[direction] };
  }

  /** Back to plain forwarding in both directions (held data flows again). */
  pass(): void {
    this.set('both', PASS);
  }

  blackhole(direction: ProxyDirection | 'both' = 'both'): void {
    this.set(direction, { blackhole: true });
  }

  pause(direction: ProxyDirection | 'both' = 'both'): void {
    this.set(direction, { paused: true });
  }

  resume(direction: ProxyDirection | 'both' = 'both'): void {
    this.set(direction, { paused: false });
  }

  /** Resets (RST) every open connection on both sides. */
  resetConnections(): void {
    for (const c of [...this.connections]) c.reset();
  }

  /** While true, new connections are reset as soon as they are accepted. */
  refuseNew(refuse: boolean): void {
    this.refusing = refuse;
  }

  /** Stops listening and resets every connection. */
  async close(): Promise<void> {
    this.resetConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.counters.connectionsAccepted++;
    if (this.refusing) {
      resetSocket(client);
      return;
    }
    const upstream =
      'path' in this.target
        ? connect({ path: this.target.path, allowHalfOpen: true })
        : connect({ port: this.target.port, host: this.target.host ?? '127.0.0.1', allowHalfOpen: true });
    const conn = new ProxyConnection(this, client, upstream);
    this.connections.add(conn);
    this.counters.connectionsOpen++;
    conn.onClosed = () => {
      if (this.connections.delete(conn)) this.counters.connectionsOpen--;
    };
  }

  /** @internal */
  faultsOf(direction: ProxyDirection): DirectionFaults {
    return this.faults[direction];
  }

  /** @internal */
  jitter(jitterMs: number): number {
    return jitterMs > 0 ? (this.rng.next() * 2 - 1) * jitterMs : 0;
  }
}

class ProxyConnection {
  onClosed: () => void = () => {};
  private readonly pipes: [Pipe, Pipe];
  private closed = false;

  constructor(
    readonly proxy: FaultProxy,
    readonly client: Socket,
    readonly upstream: Socket,
  ) {
    this.pipes = [
      new Pipe(this, 'upstream', client, upstream),
      new Pipe(this, 'downstream', upstream, client),
    ];
    for (const s of [client, upstream]) {
      s.on('error', () => this.reset());
      s.on('close', () => {
        // Data from the closed side still drains to the other side; data towards it is gone.
        for (const p of this.pipes) p.sideClosed(s);
        if (client.destroyed && upstream.destroyed) this.finish();
      });
    }
  }

  kick(): void {
    for (const p of this.pipes) p.pump();
  }

  reset(): void {
    for (const s of [this.client, this.upstream]) if (!s.destroyed) resetSocket(s);
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClosed();
  }
}

/** One direction of one connection: a FIFO of chunks released by the faults. */
class Pipe {
  private readonly queue: Array<{ data: Buffer; dueMs: number }> = [];
  private queuedBytes = 0;
  private passedBytes = 0;
  private nextFreeMs = 0;
  private lastDueMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private ended = false;

  constructor(
    private readonly conn: ProxyConnection,
    private readonly direction: ProxyDirection,
    private readonly src: Socket,
    private readonly dst: Socket,
  ) {
    src.on('data', (chunk: Buffer) => this.onData(chunk));
    src.on('end', () => {
      this.ended = true;
      this.pump();
    });
  }

  sideClosed(socket: Socket): void {
    if (socket === this.src) {
      this.ended = true;
      this.pump();
    } else if (socket === this.dst) {
      for (const q of this.queue) this.conn.proxy.counters.droppedBytes += q.data.length;
      this.queue.length = 0;
      this.queuedBytes = 0;
      if (!this.src.destroyed) this.src.destroy();
    }
  }

  private get faults(): DirectionFaults {
    return this.conn.proxy.faultsOf(this.direction);
  }

  private onData(chunk: Buffer): void {
    const f = this.faults;
    if (f.blackhole) {
      this.conn.proxy.counters.droppedBytes += chunk.length;
      return;
    }
    const dueMs = Math.max(
      this.lastDueMs,
      performance.now() + f.latencyMs + this.conn.proxy.jitter(f.jitterMs),
    );
    this.lastDueMs = dueMs;
    this.queue.push({ data: chunk, dueMs });
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > HIGH_WATER_BYTES) this.src.pause();
    this.pump();
  }

  pump(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const f = this.faults;
    if (f.blackhole) {
      for (const q of this.queue) this.conn.proxy.counters.droppedBytes += q.data.length;
      this.queue.length = 0;
      this.queuedBytes = 0;
    }
    while (!f.paused && this.queue.length > 0 && !this.dst.destroyed) {
      const head = this.queue[0] as { data: Buffer; dueMs: number };
      const now = performance.now();
      const sendAt = Math.max(head.dueMs, f.bandwidthBytesPerSecond > 0 ? this.nextFreeMs : 0);
      if (sendAt > now + 0.5) {
        this.timer = setTimeout(() => this.pump(), sendAt - now);
        return;
      }
      let data = head.data;
      if (f.bandwidthBytesPerSecond > 0) {
        // Send at most ~10 ms worth at once so the cap is smooth.
        const slice = Math.max(1, Math.floor(f.bandwidthBytesPerSecond / 100));
        if (data.length > slice) {
          head.data = data.subarray(slice);
          data = data.subarray(0, slice);
        } else this.queue.shift();
        this.nextFreeMs = Math.max(now, this.nextFreeMs) + (data.length / f.bandwidthBytesPerSecond) * 1000;
      } else if (f.sliceBytes > 0 && data.length > f.sliceBytes) {
        head.data = data.subarray(f.sliceBytes);
        data = data.subarray(0, f.sliceBytes);
      } else this.queue.shift();
      this.queuedBytes -= data.length;
      const flipAt = f.flipByteAtOffset;
      if (flipAt !== null && flipAt >= this.passedBytes && flipAt < this.passedBytes + data.length) {
        data = Buffer.from(data);
        data[flipAt - this.passedBytes] = (data[flipAt - this.passedBytes] as number) ^ 0xff;
      }
      if (f.cutAfterBytes !== null && this.passedBytes + data.length >= f.cutAfterBytes) {
        const part = data.subarray(0, Math.max(0, f.cutAfterBytes - this.passedBytes));
        this.count(part.length);
        this.conn.proxy.counters.droppedBytes += data.length - part.length;
        if (part.length > 0) this.dst.write(part, () => this.conn.reset());
        else this.conn.reset();
        return;
      }
      this.count(data.length);
      this.dst.write(data);
      if (f.sliceBytes > 0 && this.queue.length > 0) {
        this.timer = setTimeout(() => this.pump(), 1);
        return;
      }
    }
    if (this.queuedBytes <= HIGH_WATER_BYTES / 2 && this.src.isPaused()) this.src.resume();
    if (this.ended && this.queue.length === 0 && !this.dst.destroyed) {
      this.dst.end();
    }
  }

  private count(bytes: number): void {
    this.passedBytes += bytes;
    if (this.direction === 'upstream') this.conn.proxy.counters.upstreamBytes += bytes;
    else this.conn.proxy.counters.downstreamBytes += bytes;
  }
}

/** RST for TCP; Unix sockets have no RST, so they are just destroyed. */
function resetSocket(socket: Socket): void {
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

/**
 * A small TCP proxy for the replication tests (until src/testing/faults/fault-proxy.ts lands): forwards
 * loopback connections to a target and cuts a connection (both sides destroyed, like a reset) after it
 * has forwarded a scheduled number of client-to-server bytes. Counts bytes in each direction.
 */
import { createServer, connect } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';

export class CutProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  /** Upstream byte budget of each next connection, in order; connections beyond the list are not cut. */
  readonly cutSchedule: number[] = [];
  connections = 0;
  cuts = 0;
  upstreamBytes = 0;

  /** Where new connections go (a test may move it, e.g. to a restarted receiver). */
  constructor(public targetPort: number) {}

  async start(): Promise<number> {
    const server = createServer((client) => this.onClient(client));
    this.server = server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return (server.address() as AddressInfo).port;
  }

  private onClient(client: Socket): void {
    this.connections++;
    const budget = this.cutSchedule.shift();
    let forwarded = 0;
    const upstream = connect(this.targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {});
    }
    const cut = (): void => {
      this.cuts++;
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    };
    client.on('data', (b: Buffer) => {
      if (budget !== undefined && forwarded + b.length >= budget) {
        upstream.write(b.subarray(0, Math.max(0, budget - forwarded)));
        this.upstreamBytes += Math.max(0, budget - forwarded);
        forwarded = budget;
        cut();
        return;
      }
      forwarded += b.length;
      this.upstreamBytes += b.length;
      if (!upstream.write(b)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (b: Buffer) => {
      if (!client.write(b)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}

/**
 * Helpers for multi-process host tests: a two-host lab, recovery points read over NBD, waiting with a
 * deadline, and the mapping from a point's wall-clock cut time to the workload's monotonic clock.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { NbdClient } from '../../src/guest/nbd-client.js';
import { ControlClient } from '../../src/control-api/control-client.js';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import type { PointExport, ReplicaView } from '../../src/host/agent/replica-service.js';
import { loadTlsIdentity, replicationClientOptions } from '../../src/host/pki/tls-config.js';
import { HostLab } from '../../src/lab/host-lab.js';
import { PEER_ALPN } from '../../src/protocol/host-api/peer.schema.js';
import type { DiskImage } from '../../src/testing/checker/disk-image.js';
import { monotonicNowMs } from '../../src/testing/workload/write-history.js';

export const MiB = 1024 * 1024;

/** A list of cleanups run (newest first) after every test of the file: labs, clients, workloads. */
export function cleanupsAfterAll(): Array<() => Promise<void>> {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  return cleanups;
}

export async function twoHostLab(
  prefix: string,
  options: { mutual?: boolean } = {},
): Promise<{ lab: HostLab; dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  // mutual: host-a also authorizes host-b (reverse replication after a failover)
  const lab = await HostLab.create(dir, [
    { hostId: 'host-a', ...(options.mutual ? { authorize: ['host-b'] } : {}) },
    { hostId: 'host-b', authorize: ['host-a'] },
  ]);
  return {
    lab,
    dir,
    cleanup: async () => {
      await lab.stop();
      // SECONDSITE_KEEP_TEST_DIRS=1 keeps state and logs for a post-mortem.
      if (process.env['SECONDSITE_KEEP_TEST_DIRS']) console.log(`kept ${dir}`);
      else await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function createDisks(
  lab: HostLab,
  hostId: string,
  disks: Array<{ diskId: string; sizeBytes: number }>,
): Promise<void> {
  for (const d of disks) await lab.host(hostId).client.post('/v1/disks', d);
}

export async function enableReplication(
  lab: HostLab,
  options: {
    vmId: string;
    diskIds: string[];
    copyFrequencySeconds?: number;
    chunkBytes?: number;
    bandwidthLimitBytesPerSec?: number;
    appConsistentFrequencySeconds?: number;
  },
): Promise<RelationshipView> {
  const b = lab.host('host-b');
  return lab.host('host-a').client.post<RelationshipView>('/v1/relationships', {
    vmId: options.vmId,
    diskIds: options.diskIds,
    replica: { hostId: 'host-b', address: '127.0.0.1', port: b.replicationPort },
    policy: {
      copyFrequencySeconds: options.copyFrequencySeconds ?? 0,
      chunkBytes: options.chunkBytes ?? 256 * 1024,
      ...(options.bandwidthLimitBytesPerSec !== undefined
        ? { bandwidthLimitBytesPerSec: options.bandwidthLimitBytesPerSec }
        : {}),
      ...(options.appConsistentFrequencySeconds !== undefined
        ? { appConsistentFrequencySeconds: options.appConsistentFrequencySeconds }
        : {}),
    },
  });
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs = 30_000,
  stepMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`,
  );
}

export async function replicaView(lab: HostLab, relationshipId: string): Promise<ReplicaView> {
  return lab.host('host-b').client.get<ReplicaView>(`/v1/replicas/${relationshipId}`);
}

/** Offset from the monotonic clock (CLOCK_MONOTONIC, shared by processes) to wall-clock time. */
export function wallToMonotonicMs(wallMs: number): number {
  const offset = Date.now() - monotonicNowMs();
  // Date.now() has 1 ms resolution: step 2 ms earlier so the mapped cut is never later than the real one.
  return wallMs - offset - 2;
}

/**
 * Exports a point of the replica host over NBD and opens one client per disk; `images` numbers disks
 * 0..n-1 in the relationship's disk order, as the workload does. Close with `close()` (unexports).
 */
export async function openPoint(
  lab: HostLab,
  relationshipId: string,
  pointId: string,
  diskOrder: string[],
  replicaHostId = 'host-b',
): Promise<{ exported: PointExport; images: DiskImage[]; clients: NbdClient[]; close: () => Promise<void> }> {
  const b = lab.host(replicaHostId);
  const exported = await b.client.post<PointExport>(
    `/v1/replicas/${relationshipId}/points/${pointId}/export`,
  );
  const clients: NbdClient[] = [];
  for (const diskId of diskOrder) {
    const d = exported.disks.find((x) => x.diskId === diskId);
    if (!d) throw new Error(`point ${pointId} has no disk ${diskId}`);
    clients.push(await NbdClient.connect({ socketPath: b.nbdSocket, exportName: d.exportName }));
  }
  return {
    exported,
    clients,
    images: clients.map((c, i) => ({ diskId: i, read: (o: number, l: number) => c.read(o, l) })),
    close: async () => {
      for (const c of clients) await c.close();
      await b.client.delete(`/v1/replicas/${relationshipId}/points/${exported.pointId}/export`);
    },
  };
}

/**
 * Exports the replica's latest point that `accept` takes while replication goes on: a commit in
 * progress may drop the point just read (retention runs in the commit), and its export then answers
 * RECOVERY_POINT_NOT_FOUND; the next latest point is taken instead. The export pins the point.
 */
export async function openLatestPoint(
  lab: HostLab,
  relationshipId: string,
  diskOrder: string[],
  accept: (p: NonNullable<ReplicaView['latestPoint']>) => boolean = () => true,
  replicaHostId = 'host-b',
  timeoutMs = 60_000,
): Promise<{ point: NonNullable<ReplicaView['latestPoint']> } & Awaited<ReturnType<typeof openPoint>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = await lab.host(replicaHostId).client.get<ReplicaView>(`/v1/replicas/${relationshipId}`);
    const latest = view.latestPoint;
    if (latest && accept(latest)) {
      try {
        const opened = await openPoint(lab, relationshipId, latest.pointId, diskOrder, replicaHostId);
        return { point: latest, ...opened };
      } catch (e) {
        if (!(
          e instanceof Error &&
          /RECOVERY_POINT_NOT_FOUND|no longer retained/.test(
            `${e.message} ${String((e as { code?: unknown }).code)}`,
          )
        ))
          throw e;
      }
    }
    if (Date.now() > deadline)
      throw new Error(`no accepted point of ${relationshipId} could be exported in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A workload target that survives its host agent being killed: on a connection error it reconnects
 * (one shared attempt for all in-flight ops) and re-issues the op, like an NBD client with reconnect.
 * Re-issuing is idempotent (same bytes at the same place); the op counts as acknowledged when the
 * re-issue is.
 */
export class ReconnectingTarget {
  private client: NbdClient | null = null;
  private connecting: Promise<NbdClient> | null = null;
  reconnects = 0;

  constructor(
    private readonly socketPath: string,
    private readonly exportName: string,
    private readonly giveUpMs = 60_000,
  ) {}

  write(offsetBytes: number, data: Buffer, opts: { fua: boolean }): Promise<void> {
    return this.op((c) => c.write(offsetBytes, data, opts));
  }
  flush(): Promise<void> {
    return this.op((c) => c.flush());
  }
  writeZeroes(offsetBytes: number, lengthBytes: number, opts: { fua: boolean }): Promise<void> {
    return this.op((c) => c.writeZeroes(offsetBytes, lengthBytes, opts));
  }
  trim(offsetBytes: number, lengthBytes: number, opts: { fua: boolean }): Promise<void> {
    return this.op((c) => c.trim(offsetBytes, lengthBytes, opts));
  }
  read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    return this.op((c) => c.read(offsetBytes, lengthBytes));
  }

  async close(): Promise<void> {
    await this.client?.close().catch(() => undefined);
    this.client = null;
  }

  private async op<T>(fn: (c: NbdClient) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.giveUpMs;
    for (;;) {
      const c = await this.connection(deadline);
      try {
        return await fn(c);
      } catch (e) {
        if (Date.now() > deadline || !isConnectionError(e)) throw e;
        if (this.client === c) {
          this.client = null;
          void c.close().catch(() => undefined);
        }
      }
    }
  }

  private connection(deadline: number): Promise<NbdClient> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      try {
        for (;;) {
          try {
            const c = await NbdClient.connect({
              socketPath: this.socketPath,
              exportName: this.exportName,
              connectTimeoutMs: 2000,
            });
            this.client = c;
            this.reconnects++;
            return c;
          } catch (e) {
            if (Date.now() > deadline) throw e;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      } finally {
        this.connecting = null;
      }
    })();
    return this.connecting;
  }
}

function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? '';
  const message = e instanceof Error ? e.message : '';
  return (
    ['SECONDSITE_ERR_CONNECTION_LOST', 'ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ENOENT'].includes(code) ||
    /closed|closing|reset|EPIPE|ECONNREFUSED|connection/i.test(message)
  );
}

/** A client of `targetId`'s peer API (mutual TLS on its replication port) as host `callerId`. */
export async function peerClient(lab: HostLab, callerId: string, targetId: string): Promise<ControlClient> {
  const identity = await loadTlsIdentity(join(lab.host(callerId).stateDir, 'pki'), callerId);
  const tls = { ...replicationClientOptions(identity, targetId), ALPNProtocols: [PEER_ALPN] };
  return ControlClient.peer({
    host: '127.0.0.1',
    port: lab.host(targetId).replicationPort,
    hostId: targetId,
    tls,
  });
}

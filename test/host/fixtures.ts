/**
 * Helpers for multi-process host tests: a two-host lab, recovery points read over NBD, waiting with a
 * deadline, and the mapping from a point's wall-clock cut time to the workload's monotonic clock.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdClient } from '../../src/guest/nbd-client.js';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import type { PointExport, ReplicaView } from '../../src/host/agent/replica-service.js';
import { HostLab } from '../../src/lab/host-lab.js';
import type { DiskImage } from '../../src/testing/checker/disk-image.js';
import { monotonicNowMs } from '../../src/testing/workload/write-history.js';

export const MiB = 1024 * 1024;

export async function twoHostLab(
  prefix: string,
): Promise<{ lab: HostLab; dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const lab = await HostLab.create(dir, [{ hostId: 'host-a' }, { hostId: 'host-b', authorize: ['host-a'] }]);
  return {
    lab,
    dir,
    cleanup: async () => {
      await lab.stop();
      await rm(dir, { recursive: true, force: true });
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
  options: { vmId: string; diskIds: string[]; copyFrequencySeconds?: number; chunkBytes?: number },
): Promise<RelationshipView> {
  const b = lab.host('host-b');
  return lab.host('host-a').client.post<RelationshipView>('/v1/relationships', {
    vmId: options.vmId,
    diskIds: options.diskIds,
    replica: { hostId: 'host-b', address: '127.0.0.1', port: b.replicationPort },
    policy: {
      copyFrequencySeconds: options.copyFrequencySeconds ?? 0,
      chunkBytes: options.chunkBytes ?? 256 * 1024,
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
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
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
): Promise<{ exported: PointExport; images: DiskImage[]; clients: NbdClient[]; close: () => Promise<void> }> {
  const b = lab.host('host-b');
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

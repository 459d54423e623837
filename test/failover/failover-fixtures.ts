/**
 * Helpers for the host-level failover tests: a VM (a real guest process writing its record log) on host
 * A, replicated to host B, and readers of the guest's state through the agents' control APIs.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { slotOfSeq, slotOffsetBytes } from '../../src/guest/app/guest-log.format.js';
import { validateGuestLog, type GuestLogReport } from '../../src/guest/app/guest-log.validator.js';
import type { FailoverView } from '../../src/host/failover/failover-service.js';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import type { VmStatus } from '../../src/host/vm/vm-driver.js';
import type { HostLab } from '../../src/lab/host-lab.js';
import { MiB, createDisks, enableReplication, replicaView, waitFor } from '../host/fixtures.js';

export interface ProtectedVm {
  vmId: string;
  diskIds: string[];
}

/** Creates disks and a VM on host A, starts it, enables replication to host B, waits for a point. */
export async function protectedVm(
  lab: HostLab,
  vmId: string,
  options: { recordsPerSec?: number; copyFrequencySeconds?: number; diskBytes?: number } = {},
): Promise<ProtectedVm> {
  const a = lab.host('host-a');
  const diskIds = [`${vmId}-d0`];
  await createDisks(lab, 'host-a', [
    { diskId: diskIds[0] as string, sizeBytes: options.diskBytes ?? 16 * MiB },
  ]);
  await a.client.post('/v1/vms', {
    vmId,
    diskIds,
    guest: { recordsPerSec: options.recordsPerSec ?? 100, flushEveryRecords: 4, flushEveryMs: 50 },
  });
  await a.client.post(`/v1/vms/${vmId}/start`);
  await enableReplication(lab, {
    vmId,
    diskIds,
    copyFrequencySeconds: options.copyFrequencySeconds ?? 0,
    chunkBytes: CHUNK_BYTES,
  });
  await waitFor(`a first point of ${vmId}`, async () => (await replicaView(lab, vmId)).latestPoint, 60_000);
  // the primary records the initial replication as done once it hears of the point (a moment later)
  await waitFor(
    `${vmId} replicating`,
    async () =>
      (await a.client.get<RelationshipView>(`/v1/relationships/${vmId}`)).protectionState === 'replicating',
  );
  return { vmId, diskIds };
}

export function vmStatus(lab: HostLab, hostId: string, vmId: string): Promise<VmStatus> {
  return lab.host(hostId).client.get<VmStatus>(`/v1/vms/${vmId}`);
}

export function failoverView(lab: HostLab, relationshipId: string): Promise<FailoverView> {
  return lab.host('host-b').client.get<FailoverView>(`/v1/replicas/${relationshipId}/failover`);
}

/** Waits until the VM's guest answers and reports its state. */
export async function guestRunning(lab: HostLab, hostId: string, vmId: string): Promise<VmStatus> {
  return waitFor(
    `guest of ${vmId} on ${hostId} running`,
    async () => {
      const s = await vmStatus(lab, hostId, vmId);
      return s.state === 'running' && s.guest !== null ? s : null;
    },
    30_000,
  );
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return existsSync(`/proc/${pid}`);
  } catch {
    return false;
  }
}

/** The transfer chunk of the failover tests' relationships. */
export const CHUNK_BYTES = 64 * 1024;

export async function diskFile(lab: HostLab, hostId: string, diskId: string): Promise<Buffer> {
  return readFile(join(lab.host(hostId).stateDir, 'storage', 'disks', `${diskId}.raw`));
}

export async function logOf(image: Buffer): Promise<GuestLogReport> {
  const r = await validateGuestLog((o, l) => Promise.resolve(image.subarray(o, o + l)), image.length);
  assert.ok(r.valid && r.format, `the guest log is valid: ${r.problem?.message ?? ''}`);
  return r;
}

/** Bytes of the transfer chunks holding the records written after `fromSeq` up to `toSeq`. */
export function chunksOfRecords(report: GuestLogReport, fromSeq: number, toSeq: number): number {
  const f = report.format;
  assert.ok(f);
  const chunks = new Set<number>();
  for (let seq = fromSeq + 1; seq <= toSeq; seq++) {
    const at = slotOffsetBytes(f, slotOfSeq(f, seq));
    for (let c = Math.floor(at / CHUNK_BYTES); c <= Math.floor((at + f.slotBytes - 1) / CHUNK_BYTES); c++)
      chunks.add(c);
  }
  return chunks.size * CHUNK_BYTES;
}

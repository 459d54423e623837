/**
 * Reverse replication, on the old primary (docs/design/failover.md section 8): after the replica host
 * took the VM over, this host's copies of the VM's disks become the base of a replica store for the
 * new direction (renamed in, no copy), with a seed point holding exactly what they contain. The new
 * primary then enables replication back to this host at the failover's epoch; its first cycle is a
 * resync that compares digests against the seed and sends only the blocks that differ: those changed
 * since the failover plus those this host wrote and never shipped.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { DiskService } from '../agent/disk-service.js';
import type { RelationshipService } from '../agent/relationship-service.js';
import type { ReplicaService, ReplicaView } from '../agent/replica-service.js';
import type { VmService } from '../agent/vm-service.js';
import type { FailoverService } from './failover-service.js';

export interface ReverseDeps {
  readonly disks: DiskService;
  readonly relationships: RelationshipService;
  readonly replicas: ReplicaService;
  readonly vms: VmService;
  readonly failovers: FailoverService;
}

export async function seedReplicaFromLocalDisks(
  deps: ReverseDeps,
  relationshipId: string,
  request: { diskIds: readonly string[]; epoch: number; storageLocation: string },
): Promise<ReplicaView> {
  if (deps.replicas.has(relationshipId)) {
    const view = await deps.replicas.get(relationshipId);
    if (view.points.length === 1 && view.points[0]?.cycleId === 'seed' && view.epoch === request.epoch) {
      // seeded already (maybe by a run a crash cut short): drop what is left of the moved disks
      for (const diskId of request.diskIds) {
        const left = await deps.disks.get(diskId).then(
          () => true,
          () => false,
        );
        if (left && !(await deps.disks.hasImage(diskId))) await deps.disks.forget(diskId);
      }
      return view;
    }
  }
  const rel = deps.relationships
    .list()
    .find((r) => r.definition.relationshipId === relationshipId)?.definition;
  if (rel && rel.state !== 'fenced' && rel.state !== 'prepared') {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_STATE',
      `this host is still the primary of ${relationshipId} (replication is ${rel.state}); fail over to the replica host first`,
      { relationshipId, state: rel.state },
    );
  }
  const vmId = rel?.vmId ?? relationshipId;
  if (await deps.vms.isRunning(vmId)) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_STATE',
      `VM ${vmId} still runs on this host; shut it down (or power it off) before its disks become a replica`,
      { vmId },
    );
  }
  const images: Array<{ diskId: string; sourcePath: string; sizeBytes: number }> = [];
  for (const diskId of request.diskIds) {
    const disk = await deps.disks.get(diskId);
    images.push({ diskId, sourcePath: deps.disks.imagePath(diskId), sizeBytes: disk.sizeBytes });
  }
  // Retire the committed failover BEFORE the relationship goes: at a restart the failover service
  // starts the VM of a 'failed-over' record, and only a prepared or fenced relationship refuses it. The
  // other order let a kill between the two steps (failback: the VM already runs on the other host)
  // restart the VM here too: two writable primaries.
  await deps.failovers.retire(relationshipId);
  if (rel) {
    await deps.relationships.failedOverAway(relationshipId); // a prepared one: the replica took over
    await deps.relationships.disable(relationshipId);
  }
  for (const i of images) await deps.disks.release(i.diskId);
  const view = await deps.replicas.seed(relationshipId, request.storageLocation, request.epoch, images);
  for (const i of images) await deps.disks.forget(i.diskId);
  return view;
}

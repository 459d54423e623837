/**
 * Planned failover, step 1 on the primary host (docs/design/failover.md section 7): shut the VM down
 * gracefully (a guest that does not stop in time keeps running and nothing changes), then ship one
 * last cycle and wait for its point. That point holds everything the VM wrote: failing over to it on
 * the replica loses nothing. Step 2 runs on the replica: `failover start --point <it>` and `commit`.
 */
import type { RelationshipService, RelationshipView } from '../agent/relationship-service.js';
import type { VmService } from '../agent/vm-service.js';
import type { GuestAppView } from '../vm/vm-driver.js';

export async function preparePlannedFailover(
  vms: VmService,
  relationships: RelationshipService,
  relationshipId: string,
  timeoutMs: number,
): Promise<
  RelationshipView & {
    finalPoint: { pointId: string; cutWallMs: number };
    /** The guest's report at its final flush: every record up to `lastDurableSeq` is in the final point. */
    guestAtShutdown: GuestAppView | null;
  }
> {
  const vmId = relationships.get(relationshipId).definition.vmId;
  const guestAtShutdown = (await vms.isRunning(vmId))
    ? (await vms.shutdownWithReport(vmId, timeoutMs)).guestAtShutdown
    : null;
  return { ...(await relationships.prepareFailover(relationshipId)), guestAtShutdown };
}

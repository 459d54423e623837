/**
 * Which cloud a host (and so its VMs) belongs to (DESIGN.md section 6, VMM's clouds over host
 * groups). Pure.
 *
 * Host groups form a tree (a group's parent is fixed when it is made). A cloud is a set of host
 * groups and covers each of them with everything nested below. Invariant kept by the cloud service
 * with `cloudOverlaps`: no host group is covered by two clouds, so every host is in at most one cloud
 * and a VM's cloud (what a cloud pairing protects) is never ambiguous. `placeHostGroups` still
 * answers deterministically if the tables were ever to break the invariant: the nearest covering
 * group wins, then the cloud name that sorts first.
 */

export interface HostGroupNode {
  readonly hostGroupId: string;
  readonly name: string;
  readonly parentHostGroupId: string | null;
}

export interface CloudScope {
  readonly cloudId: string;
  readonly name: string;
  readonly hostGroupIds: readonly string[];
}

/** The group and its ancestors, nearest first (stops at a missing parent or a cycle). */
export function ancestry(hostGroupId: string, groups: ReadonlyMap<string, HostGroupNode>): string[] {
  const chain: string[] = [];
  let id: string | null = hostGroupId;
  while (id !== null && !chain.includes(id)) {
    chain.push(id);
    id = groups.get(id)?.parentHostGroupId ?? null;
  }
  return chain;
}

export function indexHostGroups(groups: readonly HostGroupNode[]): Map<string, HostGroupNode> {
  return new Map(groups.map((g) => [g.hostGroupId, g]));
}

/** Every host group id -> the id of the cloud that covers it, or null. */
export function placeHostGroups(
  groups: readonly HostGroupNode[],
  clouds: readonly CloudScope[],
): Map<string, string | null> {
  const byId = indexHostGroups(groups);
  const sorted = [...clouds].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const placement = new Map<string, string | null>();
  for (const g of groups) {
    let cloudId: string | null = null;
    for (const id of ancestry(g.hostGroupId, byId)) {
      const cloud = sorted.find((c) => c.hostGroupIds.includes(id));
      if (cloud) {
        cloudId = cloud.cloudId;
        break;
      }
    }
    placement.set(g.hostGroupId, cloudId);
  }
  return placement;
}

export interface CloudOverlap {
  /** The other cloud. */
  readonly cloudName: string;
  /** The candidate's host group and the other cloud's, one nested in (or equal to) the other. */
  readonly hostGroupName: string;
  readonly otherHostGroupName: string;
}

/**
 * Where a cloud of these host groups would cover a host group another cloud already covers (equal,
 * nested below, or above one of its groups). Clouds with the candidate's name are skipped (an
 * idempotent create compares against itself).
 */
export function cloudOverlaps(
  candidate: { readonly name: string; readonly hostGroupIds: readonly string[] },
  clouds: readonly CloudScope[],
  groups: readonly HostGroupNode[],
): CloudOverlap[] {
  const byId = indexHostGroups(groups);
  const nameOf = (id: string): string => byId.get(id)?.name ?? id;
  const overlaps: CloudOverlap[] = [];
  for (const other of clouds) {
    if (other.name === candidate.name) continue;
    for (const mine of candidate.hostGroupIds) {
      for (const theirs of other.hostGroupIds) {
        if (ancestry(mine, byId).includes(theirs) || ancestry(theirs, byId).includes(mine)) {
          overlaps.push({
            cloudName: other.name,
            hostGroupName: nameOf(mine),
            otherHostGroupName: nameOf(theirs),
          });
        }
      }
    }
  }
  return overlaps;
}

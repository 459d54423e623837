/**
 * Replica placement (docs/design/protection.md section 4): which host of the recovery cloud, and
 * which of its storage locations, keeps a VM's replica. Pure and deterministic (a re-run of the
 * enable job's step chooses the same host for the same facts).
 *
 * Rules: every NIC's VM network must be mapped to a network of the recovery cloud; the recovery
 * cloud's capacity (VM count, storage) must hold one more replica; only connected hosts; only storage
 * locations the storage mapping allows, with free bytes >= the VM's disks plus 10 % headroom; then
 * the fewest replicated items, the most free bytes, the host id.
 */
import { formatBytes } from '../units.js';

export const PLACEMENT_HEADROOM = 0.1;

export interface PlacementVm {
  readonly vmId: string;
  readonly diskBytes: number;
  /** The VM network of each NIC (null: not connected to a known network). */
  readonly nicNetworks: ReadonlyArray<{ readonly nicId: string; readonly vmNetworkId: string | null }>;
}

export interface PlacementHost {
  readonly hostId: string;
  readonly connected: boolean;
  readonly storageLocations: ReadonlyArray<{
    readonly name: string;
    readonly storageClassification: string;
    readonly freeBytes: number;
  }>;
  /** Replicated items whose replica this host already keeps. */
  readonly replicatedItems: number;
}

/** The recovery cloud's capacity (null: unlimited) and what its replicas already take. */
export interface CloudCapacity {
  readonly vmCount: number | null;
  readonly storageBytes: number | null;
  readonly usedVmCount: number;
  readonly usedStorageBytes: number;
}

export interface PlacementInput {
  readonly vm: PlacementVm;
  readonly cloud: CloudCapacity;
  readonly hosts: readonly PlacementHost[];
  /** Primary VM network id -> recovery VM network id. */
  readonly networkMappings: ReadonlyMap<string, string>;
  /** VM networks available to the recovery cloud. */
  readonly recoveryNetworks: ReadonlySet<string>;
  /** Storage classifications the storage mapping allows on the recovery side; null = any. */
  readonly allowedClassifications: readonly string[] | null;
}

export type PlacementResult =
  | { readonly ok: true; readonly hostId: string; readonly storageLocation: string }
  | { readonly ok: false; readonly reasons: readonly string[] };

/** Bytes a storage location must have free for a VM's replica. */
export function neededBytes(diskBytes: number): number {
  return Math.ceil(diskBytes * (1 + PLACEMENT_HEADROOM));
}

export function placeReplica(input: PlacementInput): PlacementResult {
  const reasons: string[] = [];
  for (const nic of input.vm.nicNetworks) {
    if (nic.vmNetworkId === null) continue; // not connected: nothing to map
    const target = input.networkMappings.get(nic.vmNetworkId);
    if (target === undefined) {
      reasons.push(
        `NIC ${nic.nicId} is on VM network ${nic.vmNetworkId}, which has no network mapping: map it to a network of the recovery cloud first`,
      );
    } else if (!input.recoveryNetworks.has(target)) {
      reasons.push(
        `NIC ${nic.nicId}'s network ${nic.vmNetworkId} is mapped to ${target}, which the recovery cloud does not offer: fix the network mapping`,
      );
    }
  }
  const c = input.cloud;
  if (c.vmCount !== null && c.usedVmCount + 1 > c.vmCount) {
    reasons.push(
      `the recovery cloud's capacity is ${c.vmCount} VMs and it holds ${c.usedVmCount} replicas: raise the cloud's VM capacity on its management server`,
    );
  }
  if (c.storageBytes !== null && c.usedStorageBytes + input.vm.diskBytes > c.storageBytes) {
    reasons.push(
      `the recovery cloud's storage capacity is ${formatBytes(c.storageBytes)}, its replicas take ${formatBytes(c.usedStorageBytes)} and this VM needs ${formatBytes(input.vm.diskBytes)}: raise the cloud's storage capacity`,
    );
  }
  if (reasons.length > 0) return { ok: false, reasons };
  const need = neededBytes(input.vm.diskBytes);
  const candidates: Array<{ host: PlacementHost; location: string; freeBytes: number }> = [];
  if (input.hosts.length === 0) reasons.push('the recovery cloud has no hosts');
  for (const host of input.hosts) {
    if (!host.connected) {
      reasons.push(`${host.hostId}: disconnected from its management server`);
      continue;
    }
    const allowed = host.storageLocations.filter(
      (l) =>
        input.allowedClassifications === null ||
        input.allowedClassifications.includes(l.storageClassification),
    );
    if (allowed.length === 0) {
      reasons.push(
        host.storageLocations.length === 0
          ? `${host.hostId}: no replica storage location`
          : `${host.hostId}: no storage location of classification ${(input.allowedClassifications ?? []).join(' or ')} (storage mapping)`,
      );
      continue;
    }
    const roomy = allowed.filter((l) => l.freeBytes >= need).sort((a, b) => b.freeBytes - a.freeBytes);
    const best = roomy[0];
    if (!best) {
      reasons.push(
        ...allowed.map(
          (l) =>
            `${host.hostId}: '${l.name}' has ${formatBytes(l.freeBytes)} free, needs ${formatBytes(need)}`,
        ),
      );
      continue;
    }
    candidates.push({ host, location: best.name, freeBytes: best.freeBytes });
  }
  candidates.sort(
    (a, b) =>
      a.host.replicatedItems - b.host.replicatedItems ||
      b.freeBytes - a.freeBytes ||
      (a.host.hostId < b.host.hostId ? -1 : a.host.hostId > b.host.hostId ? 1 : 0),
  );
  const chosen = candidates[0];
  return chosen
    ? { ok: true, hostId: chosen.host.hostId, storageLocation: chosen.location }
    : { ok: false, reasons };
}

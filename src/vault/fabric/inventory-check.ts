/**
 * The consistency of one inventory document before the vault stores it (docs/design/vault.md section
 * 6): the schema (protocol/vault-api/inventory.schema.ts) checks each object alone, this checks the
 * references between them: duplicate ids (and cloud or VM network names, which people type), a host,
 * cloud or VM naming a host group, host, cloud or VM network the document does not list, host group
 * cycles, and subnets, gateways and IP pools that do not fit. Every problem is reported, each naming
 * the object by its place in the document and its id, so the management server's author can find it.
 *
 * Also derives what the vault stores besides the document: the hosts of each cloud (hosts in the
 * cloud's host groups or groups nested in them) and the storage classifications the hosts name.
 */
import { SecondsiteError } from '../../domain/errors.js';
import { parseCidr, parseIpv4, subnetContains } from '../../domain/fabric/ipv4.js';
import type { Inventory } from '../../protocol/vault-api/inventory.schema.js';

/** At most this many problems are listed in the message (all, up to 1000, in details). */
const PROBLEMS_IN_MESSAGE = 20;

function duplicates(values: readonly string[]): string[] {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const v of values) (seen.has(v) ? dup : seen).add(v);
  return [...dup];
}

/** Every consistency problem of the document (empty: consistent). */
export function inventoryProblems(inv: Inventory): string[] {
  const out: string[] = [];
  const dup = (what: string, values: readonly string[]): void => {
    for (const d of duplicates(values)) out.push(`${what} ${d} appears more than once`);
  };
  dup(
    'host group id',
    inv.hostGroups.map((g) => g.hostGroupId),
  );
  dup(
    'host id',
    inv.hosts.map((h) => h.hostId),
  );
  dup(
    'cloud id',
    inv.clouds.map((c) => c.cloudId),
  );
  dup(
    'cloud name',
    inv.clouds.map((c) => c.name),
  );
  dup(
    'VM network id',
    inv.vmNetworks.map((n) => n.vmNetworkId),
  );
  dup(
    'VM network name',
    inv.vmNetworks.map((n) => n.name),
  );
  dup(
    'VM (host/id)',
    inv.vms.map((v) => `${v.hostId}/${v.vmId}`),
  );
  dup(
    'IP pool id',
    inv.vmNetworks.flatMap((n) => n.subnets.flatMap((s) => s.ipPools.map((p) => p.ipPoolId))),
  );

  const groups = new Map(inv.hostGroups.map((g) => [g.hostGroupId, g]));
  const hosts = new Set(inv.hosts.map((h) => h.hostId));
  const clouds = new Set(inv.clouds.map((c) => c.cloudId));
  const networks = new Set(inv.vmNetworks.map((n) => n.vmNetworkId));

  inv.hostGroups.forEach((g, i) => {
    const at = `hostGroups[${i}] (${g.hostGroupId})`;
    if (g.parentHostGroupId !== null && !groups.has(g.parentHostGroupId))
      out.push(`${at}: parent host group ${g.parentHostGroupId} is not in the inventory's hostGroups`);
    // a cycle: walking up never reaches the top
    let cur: string | null = g.parentHostGroupId;
    for (let steps = 0; cur !== null; steps++) {
      if (cur === g.hostGroupId || steps > groups.size) {
        out.push(`${at}: host groups nest in a cycle`);
        break;
      }
      cur = groups.get(cur)?.parentHostGroupId ?? null;
    }
  });
  inv.hosts.forEach((h, i) => {
    const at = `hosts[${i}] (${h.hostId})`;
    if (h.hostGroupId !== null && !groups.has(h.hostGroupId))
      out.push(`${at}: host group ${h.hostGroupId} is not in the inventory's hostGroups`);
    for (const d of duplicates(h.storageLocations.map((s) => s.name)))
      out.push(`${at}: storage location ${d} appears more than once`);
    h.storageLocations.forEach((s) => {
      if (s.freeBytes > s.capacityBytes)
        out.push(`${at}: storage location ${s.name} has more free bytes than capacity`);
    });
  });
  inv.clouds.forEach((c, i) => {
    const at = `clouds[${i}] (${c.cloudId})`;
    for (const g of c.hostGroupIds)
      if (!groups.has(g)) out.push(`${at}: host group ${g} is not in the inventory's hostGroups`);
    for (const d of duplicates(c.hostGroupIds)) out.push(`${at}: host group ${d} is listed twice`);
  });
  inv.vmNetworks.forEach((n, i) => {
    const at = `vmNetworks[${i}] (${n.vmNetworkId})`;
    for (const c of n.cloudIds)
      if (!clouds.has(c)) out.push(`${at}: cloud ${c} is not in the inventory's clouds`);
    for (const d of duplicates(n.cloudIds)) out.push(`${at}: cloud ${d} is listed twice`);
    for (const d of duplicates(n.subnets.map((s) => s.cidr))) out.push(`${at}: subnet ${d} is listed twice`);
    for (const s of n.subnets) {
      const parsed = parseCidr(s.cidr);
      if (!parsed.ok) {
        out.push(`${at}: subnet ${parsed.message}`);
        continue;
      }
      const subnet = parsed.subnet;
      const inside = (ip: string): boolean => {
        const x = parseIpv4(ip);
        return x !== null && subnetContains(subnet, x);
      };
      if (s.gateway !== null && !inside(s.gateway))
        out.push(`${at}: gateway ${s.gateway} is outside subnet ${s.cidr}`);
      for (const p of s.ipPools) {
        if (!inside(p.rangeStart) || !inside(p.rangeEnd))
          out.push(
            `${at}: IP pool ${p.ipPoolId} (${p.rangeStart}-${p.rangeEnd}) is outside subnet ${s.cidr}`,
          );
        else if ((parseIpv4(p.rangeStart) ?? 0) > (parseIpv4(p.rangeEnd) ?? 0))
          out.push(`${at}: IP pool ${p.ipPoolId} starts after it ends (${p.rangeStart}-${p.rangeEnd})`);
      }
    }
  });
  inv.vms.forEach((v, i) => {
    const at = `vms[${i}] (${v.vmId})`;
    if (!hosts.has(v.hostId)) out.push(`${at}: host ${v.hostId} is not in the inventory's hosts`);
    if (v.cloudId !== null && !clouds.has(v.cloudId))
      out.push(`${at}: cloud ${v.cloudId} is not in the inventory's clouds`);
    for (const d of duplicates(v.disks.map((x) => x.diskId)))
      out.push(`${at}: disk ${d} appears more than once`);
    for (const d of duplicates(v.nics.map((x) => x.nicId)))
      out.push(`${at}: NIC ${d} appears more than once`);
    for (const nic of v.nics)
      if (nic.vmNetworkId !== null && !networks.has(nic.vmNetworkId))
        out.push(
          `${at}: NIC ${nic.nicId} is on VM network ${nic.vmNetworkId}, which is not in the inventory's vmNetworks`,
        );
  });
  return out;
}

/** Throws SECONDSITE_ERR_INVALID_ARGUMENT listing the problems, if there are any. */
export function checkInventory(inv: Inventory): void {
  const problems = inventoryProblems(inv);
  if (problems.length === 0) return;
  const shown = problems.slice(0, PROBLEMS_IN_MESSAGE).join('; ');
  const more =
    problems.length > PROBLEMS_IN_MESSAGE ? `; and ${problems.length - PROBLEMS_IN_MESSAGE} more` : '';
  throw new SecondsiteError(
    'SECONDSITE_ERR_INVALID_ARGUMENT',
    `the inventory is not consistent, nothing was stored: ${shown}${more}`,
    { problems: problems.slice(0, 1000) },
  );
}

/** [cloudId, hostId] pairs: the hosts in each cloud's host groups and the groups nested in them. */
export function cloudHosts(inv: Inventory): Array<[string, string]> {
  const children = new Map<string, string[]>();
  for (const g of inv.hostGroups) {
    if (g.parentHostGroupId === null) continue;
    const list = children.get(g.parentHostGroupId) ?? [];
    list.push(g.hostGroupId);
    children.set(g.parentHostGroupId, list);
  }
  const hostsByGroup = new Map<string, string[]>();
  for (const h of inv.hosts) {
    if (h.hostGroupId === null) continue;
    const list = hostsByGroup.get(h.hostGroupId) ?? [];
    list.push(h.hostId);
    hostsByGroup.set(h.hostGroupId, list);
  }
  const out: Array<[string, string]> = [];
  for (const c of inv.clouds) {
    const seenGroups = new Set<string>();
    const seenHosts = new Set<string>();
    const stack = [...c.hostGroupIds];
    while (stack.length > 0) {
      const g = stack.pop() as string;
      if (seenGroups.has(g)) continue;
      seenGroups.add(g);
      stack.push(...(children.get(g) ?? []));
      for (const h of hostsByGroup.get(g) ?? []) {
        if (!seenHosts.has(h)) {
          seenHosts.add(h);
          out.push([c.cloudId, h]);
        }
      }
    }
  }
  return out;
}

/** The storage classifications the hosts' storage locations name (unclassified '' is none). */
export function storageClassifications(inv: Inventory): string[] {
  const names = new Set<string>();
  for (const h of inv.hosts)
    for (const s of h.storageLocations)
      if (s.storageClassification !== '') names.add(s.storageClassification);
  return [...names].sort();
}

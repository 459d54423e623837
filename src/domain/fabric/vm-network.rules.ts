/**
 * The rules a VM network's subnets and IP pools satisfy (DESIGN.md section 6, VMM's VM networks):
 * the management server's service, control API and CLI give the same messages from here. Pure.
 *
 *   - a subnet is an IPv4 CIDR without host bits (10.1.0.0/24, not 10.1.0.5/24);
 *   - the subnets of one VM network do not overlap (two VM networks may use the same subnet: they are
 *     separate networks, as in VMM with network virtualization);
 *   - a gateway is a usable host address of its subnet (not the network or broadcast address) and
 *     lies in no IP pool (a VM must never be given the gateway's address);
 *   - an IP pool is START-END inside its subnet, on usable host addresses, START <= END, and the pools
 *     of a subnet do not overlap; pool names are unique within the subnet (default pool-1, pool-2...
 *     in address order).
 */
import { SecondsiteError } from '../errors.js';
import {
  formatCidr,
  formatIpv4,
  isUsableHostAddress,
  parseCidr,
  parseIpv4,
  rangesOverlap,
  subnetsOverlap,
  type Ipv4Range,
  type Ipv4Subnet,
} from './ipv4.js';

export const MAX_SUBNETS_PER_VM_NETWORK = 100;
export const MAX_IP_POOLS_PER_SUBNET = 100;

export interface IpPoolSpec {
  readonly name?: string | undefined;
  readonly rangeStart: string;
  readonly rangeEnd: string;
}

export interface SubnetSpec {
  readonly cidr: string;
  readonly gateway?: string | null | undefined;
  readonly ipPools?: readonly IpPoolSpec[] | undefined;
}

/** A subnet after validation: canonical text, pools named. */
export interface ValidSubnet {
  readonly cidr: string;
  readonly gateway: string | null;
  readonly ipPools: readonly {
    readonly name: string;
    readonly rangeStart: string;
    readonly rangeEnd: string;
  }[];
}

/** `START-END` (the CLI's --ip-pool) -> its two addresses as written; null when not of that shape. */
export function splitIpRange(text: string): { rangeStart: string; rangeEnd: string } | null {
  const m = /^\s*([0-9.]+)\s*-\s*([0-9.]+)\s*$/.exec(text);
  return m?.[1] && m[2] ? { rangeStart: m[1], rangeEnd: m[2] } : null;
}

/** Every problem of the subnets, as messages that say what to fix; [] when valid. */
export function subnetProblems(subnets: readonly SubnetSpec[]): string[] {
  return check(subnets).problems;
}

/** The subnets, normalized; SECONDSITE_ERR_INVALID_ARGUMENT listing every problem otherwise. */
export function validateSubnets(subnets: readonly SubnetSpec[]): ValidSubnet[] {
  const { problems, valid } = check(subnets);
  if (problems.length > 0) {
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', problems.join('; '), { problems });
  }
  return valid;
}

function check(subnets: readonly SubnetSpec[]): { problems: string[]; valid: ValidSubnet[] } {
  const problems: string[] = [];
  const valid: ValidSubnet[] = [];
  if (subnets.length === 0) problems.push('a VM network needs a subnet, e.g. --subnet 10.1.0.0/24');
  if (subnets.length > MAX_SUBNETS_PER_VM_NETWORK)
    problems.push(`a VM network has at most ${MAX_SUBNETS_PER_VM_NETWORK} subnets`);
  const parsed: Ipv4Subnet[] = [];
  for (const spec of subnets) {
    const c = parseCidr(spec.cidr);
    if (!c.ok) {
      problems.push(c.message);
      continue;
    }
    const subnet = c.subnet;
    const cidr = formatCidr(subnet);
    const clash = parsed.find((other) => subnetsOverlap(other, subnet));
    if (clash) problems.push(`subnets ${formatCidr(clash)} and ${cidr} overlap; give each address once`);
    parsed.push(subnet);
    valid.push(checkSubnet(subnet, spec, problems));
  }
  return { problems, valid };
}

function checkSubnet(subnet: Ipv4Subnet, spec: SubnetSpec, problems: string[]): ValidSubnet {
  const cidr = formatCidr(subnet);
  let gateway: number | null = null;
  if (spec.gateway !== undefined && spec.gateway !== null && spec.gateway !== '') {
    gateway = parseIpv4(spec.gateway);
    if (gateway === null) problems.push(`gateway '${spec.gateway}' is not an IPv4 address`);
    else if (!isUsableHostAddress(subnet, gateway)) {
      problems.push(
        `gateway ${spec.gateway} is not a host address of subnet ${cidr}; choose one inside it, not its network or broadcast address`,
      );
    }
  }
  // in address order, so that default names (pool-1 the lowest) do not depend on the order given
  const pools = [...(spec.ipPools ?? [])].sort(
    (a, b) => (parseIpv4(a.rangeStart) ?? -1) - (parseIpv4(b.rangeStart) ?? -1),
  );
  if (pools.length > MAX_IP_POOLS_PER_SUBNET)
    problems.push(`subnet ${cidr} has more than ${MAX_IP_POOLS_PER_SUBNET} IP pools`);
  const seen: { name: string; range: Ipv4Range; text: string }[] = [];
  const ipPools: { name: string; rangeStart: string; rangeEnd: string }[] = [];
  pools.forEach((pool, i) => {
    const name = pool.name ?? `pool-${i + 1}`;
    const text = `${pool.rangeStart}-${pool.rangeEnd}`;
    const start = parseIpv4(pool.rangeStart);
    const end = parseIpv4(pool.rangeEnd);
    if (start === null || end === null) {
      problems.push(`IP pool '${text}' is not START-END of two IPv4 addresses, e.g. 10.1.0.100-10.1.0.200`);
      return;
    }
    if (start > end) {
      problems.push(`IP pool ${text} ends before it starts; write the lower address first`);
      return;
    }
    if (!isUsableHostAddress(subnet, start) || !isUsableHostAddress(subnet, end)) {
      problems.push(
        `IP pool ${text} is not inside subnet ${cidr} (its host addresses are ${hostRange(subnet)}); choose a range inside it`,
      );
      return;
    }
    const range = { start, end };
    const clash = seen.find((s) => rangesOverlap(s.range, range));
    if (clash) problems.push(`IP pools ${clash.text} and ${text} overlap; give each address to one pool`);
    if (seen.some((s) => s.name === name)) problems.push(`two IP pools of subnet ${cidr} are named ${name}`);
    if (gateway !== null && rangesOverlap(range, { start: gateway, end: gateway })) {
      problems.push(`IP pool ${text} holds the gateway ${formatIpv4(gateway)}; leave the gateway out of it`);
    }
    seen.push({ name, range, text });
    ipPools.push({ name, rangeStart: formatIpv4(start), rangeEnd: formatIpv4(end) });
  });
  return { cidr, gateway: gateway === null ? null : formatIpv4(gateway), ipPools };
}

function hostRange(subnet: Ipv4Subnet): string {
  const size = 2 ** (32 - subnet.prefixLength);
  if (subnet.prefixLength >= 31)
    return `${formatIpv4(subnet.network)}-${formatIpv4(subnet.network + size - 1)}`;
  return `${formatIpv4(subnet.network + 1)}-${formatIpv4(subnet.network + size - 2)}`;
}

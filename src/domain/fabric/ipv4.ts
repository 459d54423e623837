/**
 * IPv4 addresses, subnets (CIDR) and address ranges as numbers, for the rules of VM networks
 * (vm-network.rules.ts). Pure. An address is its 32-bit value (0..2^32-1) as a JS number.
 */

/** The address's value, or null when `text` is not a dotted quad of 0-255 without leading zeros. */
export function parseIpv4(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return null;
    const octet = Number(part);
    if (octet > 255) return null;
    value = value * 256 + octet;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** A subnet: its first address and its prefix length. */
export interface Ipv4Subnet {
  readonly network: number;
  readonly prefixLength: number;
}

/** The number of addresses in a subnet of this prefix length. */
export function subnetSize(prefixLength: number): number {
  return 2 ** (32 - prefixLength);
}

export type CidrParse =
  { readonly ok: true; readonly subnet: Ipv4Subnet } | { readonly ok: false; readonly message: string };

/**
 * Parses `a.b.c.d/n` (n = 0..32). Host bits set (10.1.0.5/24) are refused with the subnet meant, so a
 * typo never widens or moves a subnet silently.
 */
export function parseCidr(text: string): CidrParse {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text.trim());
  const address = m?.[1] === undefined ? null : parseIpv4(m[1]);
  const prefixLength = Number(m?.[2]);
  if (address === null || !(prefixLength >= 0 && prefixLength <= 32)) {
    return {
      ok: false,
      message: `'${text}' is not an IPv4 subnet; write it as ADDRESS/PREFIX, e.g. 10.1.0.0/24`,
    };
  }
  const size = subnetSize(prefixLength);
  const network = address - (address % size);
  if (network !== address) {
    return {
      ok: false,
      message: `'${text}' has host bits set; the subnet is ${formatCidr({ network, prefixLength })}`,
    };
  }
  return { ok: true, subnet: { network, prefixLength } };
}

export function formatCidr(subnet: Ipv4Subnet): string {
  return `${formatIpv4(subnet.network)}/${subnet.prefixLength}`;
}

/** The subnet's last address (its broadcast address when the prefix is 30 or shorter). */
export function lastAddress(subnet: Ipv4Subnet): number {
  return subnet.network + subnetSize(subnet.prefixLength) - 1;
}

export function subnetContains(subnet: Ipv4Subnet, address: number): boolean {
  return address >= subnet.network && address <= lastAddress(subnet);
}

/** Addresses a VM may hold: all but the network and broadcast addresses, except in /31 and /32. */
export function isUsableHostAddress(subnet: Ipv4Subnet, address: number): boolean {
  if (!subnetContains(subnet, address)) return false;
  if (subnet.prefixLength >= 31) return true;
  return address !== subnet.network && address !== lastAddress(subnet);
}

/** An inclusive range of addresses. */
export interface Ipv4Range {
  readonly start: number;
  readonly end: number;
}

export function rangesOverlap(a: Ipv4Range, b: Ipv4Range): boolean {
  return a.start <= b.end && b.start <= a.end;
}

export function subnetsOverlap(a: Ipv4Subnet, b: Ipv4Subnet): boolean {
  return rangesOverlap({ start: a.network, end: lastAddress(a) }, { start: b.network, end: lastAddress(b) });
}

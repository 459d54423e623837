/**
 * The managed authorization lists the vault derives from cloud pairings (docs/design/protection.md
 * section 3). Pure: (pairings, storage mappings, the hosts of each paired cloud, site CAs) -> for
 * every host of every paired cloud, the entries and trust groups its management server must put on it.
 *
 * For a pairing of cloud X (management server M1) -> cloud Y (M2): each host of Y accepts each host of X
 * into its storage locations that M1 -> M2 storage mappings allow (all of them when there is no such
 * mapping), trusted through M1's site CA; each host of X accepts each host of Y the same way the other
 * direction (reverse replication and failback use the same hosts). A host gets the union over every
 * pairing it takes part in; the output is sorted, so equal inputs give equal lists (and the vault can
 * tell a change from none by comparing them).
 */

export interface PairedCloud {
  readonly managementServerId: string;
  readonly cloudId: string;
}

export interface PairingInput {
  readonly primary: PairedCloud;
  readonly recovery: PairedCloud;
}

export interface StorageMappingInput {
  readonly primaryManagementServerId: string;
  readonly primaryClassification: string;
  readonly recoveryManagementServerId: string;
  readonly recoveryClassification: string;
}

export interface CloudHostInput {
  readonly hostId: string;
  readonly storageLocations: ReadonlyArray<{ readonly name: string; readonly storageClassification: string }>;
}

export interface DerivedEntry {
  readonly primaryHostId: string;
  readonly storageLocation: string;
  readonly trustGroup: string;
}

export interface DerivedHostAuthorization {
  readonly managementServerId: string;
  readonly hostId: string;
  readonly entries: readonly DerivedEntry[];
  /** Trust group name (a management server id) -> that site's CA (PEM). */
  readonly trustGroups: ReadonlyArray<{ readonly name: string; readonly caCertPem: string }>;
}

export interface DerivedAuthorizationInput {
  readonly pairings: readonly PairingInput[];
  readonly storageMappings: readonly StorageMappingInput[];
  /** `${managementServerId}/${cloudId}` -> the cloud's hosts. */
  readonly cloudHosts: ReadonlyMap<string, readonly CloudHostInput[]>;
  /** management server id -> its site CA (PEM). */
  readonly siteCas: ReadonlyMap<string, string>;
}

export const cloudKey = (c: PairedCloud): string => `${c.managementServerId}/${c.cloudId}`;

/** The storage locations of `host` that replicas from `fromServer` may use on `toServer`. */
function allowedLocations(
  host: CloudHostInput,
  fromServer: string,
  toServer: string,
  mappings: readonly StorageMappingInput[],
): string[] {
  const targets = mappings
    .filter((m) => m.primaryManagementServerId === fromServer && m.recoveryManagementServerId === toServer)
    .map((m) => m.recoveryClassification);
  return host.storageLocations
    .filter((l) => targets.length === 0 || targets.includes(l.storageClassification))
    .map((l) => l.name);
}

/**
 * Every host of every paired cloud with its derived list; hosts in no pairing are absent (their
 * management server sends them an empty list). A site without a known CA contributes no trust group
 * and no entries (its hosts could not be verified anyway).
 */
export function deriveAuthorization(input: DerivedAuthorizationInput): DerivedHostAuthorization[] {
  const byHost = new Map<
    string,
    { managementServerId: string; hostId: string; entries: Map<string, DerivedEntry>; groups: Set<string> }
  >();
  const slot = (managementServerId: string, hostId: string) => {
    const key = `${managementServerId}/${hostId}`;
    let s = byHost.get(key);
    if (!s) {
      s = { managementServerId, hostId, entries: new Map(), groups: new Set() };
      byHost.set(key, s);
    }
    return s;
  };
  const direction = (from: PairedCloud, to: PairedCloud): void => {
    const fromHosts = input.cloudHosts.get(cloudKey(from)) ?? [];
    const toHosts = input.cloudHosts.get(cloudKey(to)) ?? [];
    const group = from.managementServerId;
    for (const h of toHosts) {
      const s = slot(to.managementServerId, h.hostId);
      if (!input.siteCas.has(group)) continue;
      s.groups.add(group);
      for (const location of allowedLocations(
        h,
        from.managementServerId,
        to.managementServerId,
        input.storageMappings,
      )) {
        for (const g of fromHosts) {
          if (g.hostId === h.hostId && from.managementServerId === to.managementServerId) continue;
          const e = { primaryHostId: g.hostId, storageLocation: location, trustGroup: group };
          s.entries.set(`${e.primaryHostId}/${e.storageLocation}/${e.trustGroup}`, e);
        }
      }
    }
  };
  for (const p of input.pairings) {
    direction(p.primary, p.recovery);
    direction(p.recovery, p.primary);
  }
  const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  return [...byHost.values()]
    .map((s) => ({
      managementServerId: s.managementServerId,
      hostId: s.hostId,
      entries: [...s.entries.entries()].sort(([a], [b]) => cmp(a, b)).map(([, e]) => e),
      trustGroups: [...s.groups]
        .sort(cmp)
        .map((name) => ({ name, caCertPem: input.siteCas.get(name) ?? '' })),
    }))
    .sort((a, b) => cmp(`${a.managementServerId}/${a.hostId}`, `${b.managementServerId}/${b.hostId}`));
}

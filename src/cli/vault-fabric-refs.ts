/**
 * How the vault CLI turns what a user types into the API's ids (docs/design/vault.md section 6):
 * a cloud or VM network is `SERVER/NAME` (SERVER: a management server's name or id; NAME: the
 * object's name or id), or a bare NAME that only one management server has. A storage classification
 * is `SERVER/CLASSIFICATION` or a bare classification that only one management server has. An
 * ambiguous or unknown name is an error that lists what would match.
 */
import { SecondsiteError } from '../domain/errors.js';
import type { VaultClient } from '../manager/provider/vault-client.js';
import type {
  CloudView,
  StorageClassificationView,
  VmNetworkView,
} from '../protocol/vault-api/fabric.schema.js';

/** Every page of a fabric list (the API pages at most 1000 objects). */
export async function allPages<T>(client: VaultClient, path: string, key: string): Promise<T[]> {
  const out: T[] = [];
  let after: string | null = null;
  const sep = path.includes('?') ? '&' : '?';
  do {
    const page: Record<string, unknown> = await client.get(
      `${path}${sep}limit=1000${after !== null ? `&after=${encodeURIComponent(after)}` : ''}`,
    );
    out.push(...((page[key] as T[] | undefined) ?? []));
    after = (page['next'] as string | null | undefined) ?? null;
  } while (after !== null);
  return out;
}

const q = encodeURIComponent;

function split(ref: string): { server?: string; name: string } {
  const slash = ref.indexOf('/');
  if (slash < 0) return { name: ref };
  return { server: ref.slice(0, slash), name: ref.slice(slash + 1) };
}

function exactlyOne<T>(
  found: T[],
  what: string,
  ref: string,
  label: (x: T) => string,
  listCommand: string,
): T {
  if (found.length === 1) return found[0] as T;
  if (found.length === 0) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_NOT_FOUND',
      `no ${what} '${ref}'; see '${listCommand}' (write SERVER/NAME, SERVER being the management server's name or id)`,
      { ref },
    );
  }
  throw new SecondsiteError(
    'SECONDSITE_ERR_INVALID_ARGUMENT',
    `${what} name '${ref}' is on several management servers (${found.map(label).sort().join(', ')}); write SERVER/NAME`,
    { ref },
  );
}

export async function resolveCloud(client: VaultClient, ref: string): Promise<CloudView> {
  const { server, name } = split(ref);
  const scope = server === undefined ? '' : `&managementServer=${q(server)}`;
  let found = await allPages<CloudView>(client, `/v1/clouds?name=${q(name)}${scope}`, 'clouds');
  if (found.length === 0)
    found = await allPages<CloudView>(client, `/v1/clouds?cloud=${q(name)}${scope}`, 'clouds');
  // a missing cloud (kept for its pairing) may share its name with a present one
  if (found.length > 1 && found.filter((c) => c.state === 'present').length === 1)
    found = found.filter((c) => c.state === 'present');
  return exactlyOne(
    found,
    'cloud',
    ref,
    (c) => `${c.managementServerName}/${c.name}`,
    'secondsite vault cloud list',
  );
}

export async function resolveNetwork(client: VaultClient, ref: string): Promise<VmNetworkView> {
  const { server, name } = split(ref);
  const scope = server === undefined ? '' : `&managementServer=${q(server)}`;
  let found = await allPages<VmNetworkView>(client, `/v1/vm-networks?name=${q(name)}${scope}`, 'vmNetworks');
  if (found.length === 0)
    found = await allPages<VmNetworkView>(client, `/v1/vm-networks?id=${q(name)}${scope}`, 'vmNetworks');
  if (found.length > 1 && found.filter((n) => n.state === 'present').length === 1)
    found = found.filter((n) => n.state === 'present');
  return exactlyOne(
    found,
    'VM network',
    ref,
    (n) => `${n.managementServerName}/${n.name}`,
    'secondsite vault network list',
  );
}

export async function resolveClassification(
  client: VaultClient,
  ref: string,
): Promise<StorageClassificationView> {
  const { server, name } = split(ref);
  const scope = server === undefined ? '' : `&managementServer=${q(server)}`;
  const found = await allPages<StorageClassificationView>(
    client,
    `/v1/storage-classifications?name=${q(name)}${scope}`,
    'storageClassifications',
  );
  return exactlyOne(
    found,
    'storage classification',
    ref,
    (c) => `${c.managementServerName}/${c.name}`,
    'secondsite vault storage-classification list',
  );
}

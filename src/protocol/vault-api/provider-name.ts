/**
 * The name a provider's certificate carries (docs/design/vault.md section 4): the vault chooses it at
 * registration and renewal, the vault's authentication and the provider's renewal check it.
 */

/** The CN of a provider's certificate: `provider.<managementServerId>.<node>` (lower case). */
export function providerCommonName(managementServerId: string, nodeName: string): string {
  return `provider.${managementServerId}.${nodeName}`.toLowerCase();
}

export function parseProviderCommonName(cn: string): { managementServerId: string; nodeName: string } | null {
  const m = /^provider\.(ms_[0-9a-f]{24})\.([a-z0-9-]{1,63})$/.exec(cn);
  return m ? { managementServerId: m[1] as string, nodeName: m[2] as string } : null;
}

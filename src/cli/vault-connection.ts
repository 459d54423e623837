/**
 * How the CLI reaches the vault: `--vault-dir DIR` (a vault data directory on this machine: its
 * vault.json, ca.crt and admin.token), or `--vault URL --ca FILE --token TOKEN`, or the environment
 * (SECONDSITE_VAULT_URL, SECONDSITE_VAULT_CA, SECONDSITE_TOKEN, SECONDSITE_VAULT_DIR). Flags win over
 * the environment; a missing piece is an error that says which flag or variable to set.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SecondsiteError } from '../domain/errors.js';
import { VaultClient } from '../manager/provider/vault-client.js';
import type { VaultEndpointFile } from '../vault/vault-server.js';
import { optionalString, type Parsed } from './args.js';

export const CONNECTION_OPTIONS = {
  'vault-dir': { type: 'string' },
  vault: { type: 'string' },
  ca: { type: 'string' },
  token: { type: 'string' },
} as const;

export const CONNECTION_HELP = `connection (flags, or the environment variables in brackets):
  --vault-dir DIR   a vault data directory on this machine (vault.json, ca.crt, admin.token)
                    [SECONDSITE_VAULT_DIR]
  --vault URL       the vault's URL, e.g. https://vault.example:8443 [SECONDSITE_VAULT_URL]
  --ca FILE         the vault's CA certificate [SECONDSITE_VAULT_CA]
  --token TOKEN     an API token (secondsite vault token create) [SECONDSITE_TOKEN]`;

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_NOT_FOUND',
      `cannot read ${what} ${path}: ${(e as Error).message}`,
    );
  }
}

export async function vaultClientFrom(p: Parsed): Promise<VaultClient> {
  const env = process.env;
  const dir = optionalString(p, 'vault-dir') ?? env['SECONDSITE_VAULT_DIR'];
  let url = optionalString(p, 'vault') ?? env['SECONDSITE_VAULT_URL'];
  let caPath = optionalString(p, 'ca') ?? env['SECONDSITE_VAULT_CA'];
  let token = optionalString(p, 'token') ?? env['SECONDSITE_TOKEN'];
  if (dir) {
    const endpoint = JSON.parse(
      await readText(join(dir, 'vault.json'), 'the vault endpoint file'),
    ) as VaultEndpointFile;
    url ??= endpoint.url;
    caPath ??= endpoint.caCertPath;
    token ??= (await readFile(join(dir, 'admin.token'), 'utf8').catch(() => '')).trim() || undefined;
  }
  if (!url) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      'which vault? pass --vault URL (or --vault-dir DIR), or set SECONDSITE_VAULT_URL',
    );
  }
  if (!caPath) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      "the vault's CA certificate is needed to trust it: pass --ca FILE (the vault writes ca.crt in its data directory), or set SECONDSITE_VAULT_CA",
    );
  }
  if (!token) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      'an API token is needed: pass --token TOKEN or set SECONDSITE_TOKEN (the first one is in the vault data directory, admin.token)',
    );
  }
  return new VaultClient({ url, caCertPem: await readText(caPath, 'the CA certificate'), token });
}

/**
 * Registering a management server's provider with the vault (docs/design/vault.md section 4), on the
 * management server: read the key file, make the provider's key and CSR (the key stays here), post
 * the registration, keep the certificate. Files in `<dataDir>/provider/` (0700): `provider.key`
 * (0600) and `provider.crt` (installed as a pair, key-cert-pair.ts: renewal replaces them the same
 * way), `vault-ca.crt`, `registration.json`.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isSecondsiteError, SecondsiteError } from '../../domain/errors.js';
import {
  createPendingKey,
  installPending,
  keyCertPairPaths,
  readKeyCertPair,
  type KeyCertPairPaths,
} from '../../pki/key-cert-pair.js';
import {
  registrationKeyFileSchema,
  type RegistrationKeyFile,
  type RegistrationResult,
} from '../../protocol/vault-api/vault-api.schema.js';
import { VaultClient } from './vault-client.js';

export interface ProviderRegistration {
  readonly format: 'secondsite-provider-registration-1';
  readonly vaultUrl: string;
  readonly vaultId: string;
  readonly vaultName: string;
  readonly managementServerId: string;
  readonly managementServerName: string;
  readonly nodeName: string;
  readonly heartbeatIntervalSeconds: number;
  readonly registeredAt: string;
}

export interface ProviderIdentity {
  readonly registration: ProviderRegistration;
  readonly keyPem: string;
  readonly certPem: string;
  readonly vaultCaCertPem: string;
}

export function providerDir(dataDir: string): string {
  return join(dataDir, 'provider');
}

/** `provider.key` and `provider.crt`, the provider's client identity with the vault. */
export function providerKeyPair(dataDir: string): KeyCertPairPaths {
  return keyCertPairPaths(providerDir(dataDir), 'provider');
}

/** The subject a provider's CSR asks for (the vault ignores it and names the node itself). */
export function providerCsrName(registration: { managementServerName: string; nodeName: string }): string {
  return `${registration.managementServerName}.${registration.nodeName}`.toLowerCase();
}

/** Reads and checks a registration key file; a file that is not one says so. */
export async function readKeyFile(path: string): Promise<RegistrationKeyFile> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (e) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_NOT_FOUND',
      `cannot read the registration key file ${path}: ${(e as Error).message}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new SecondsiteError(
      'SECONDSITE_ERR_KEY_INVALID',
      `${path} is not a registration key file (not JSON); download a new key`,
    );
  }
  const r = registrationKeyFileSchema.safeParse(parsed);
  if (!r.success) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_KEY_INVALID',
      `${path} is not a valid registration key file (${r.error.issues.map((i) => i.path.join('.') || 'file').join(', ')}); download a new key`,
    );
  }
  return r.data;
}

export async function registerProvider(opts: {
  dataDir: string;
  keyFile: string;
  managementServerName: string;
  nodeName: string;
  /** Overrides the URL in the key file (e.g. the vault is reached by another name from here). */
  vaultUrl?: string;
}): Promise<ProviderIdentity> {
  const key = await readKeyFile(opts.keyFile);
  const dir = providerDir(opts.dataDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700); // an existing folder keeps its mode through mkdir
  // a new key pair per registration: registering again replaces the certificate (and so the old key)
  const pair = providerKeyPair(opts.dataDir);
  const csrPem = await createPendingKey(pair, providerCsrName(opts));
  const vaultUrl = opts.vaultUrl ?? key.vaultUrl;
  const client = new VaultClient({ url: vaultUrl, caCertPem: key.vaultCaCertPem });
  const result = await client.post<RegistrationResult>('/v1/registrations', {
    vaultId: key.vaultId,
    keyId: key.keyId,
    secret: key.secret,
    managementServerName: opts.managementServerName,
    nodeName: opts.nodeName,
    csrPem,
  });
  const registration: ProviderRegistration = {
    format: 'secondsite-provider-registration-1',
    vaultUrl,
    vaultId: key.vaultId,
    vaultName: key.vaultName,
    managementServerId: result.managementServerId,
    managementServerName: result.managementServerName,
    nodeName: result.nodeName,
    heartbeatIntervalSeconds: result.heartbeatIntervalSeconds,
    registeredAt: new Date().toISOString(),
  };
  await installPending(pair, result.certPem);
  await writeFile(join(dir, 'vault-ca.crt'), result.vaultCaCertPem);
  await writeFile(join(dir, 'registration.json'), `${JSON.stringify(registration, null, 2)}\n`);
  return loadProviderIdentity(opts.dataDir);
}

/** The provider's identity from its data directory; NOT_FOUND (with the fix) when it never registered. */
export async function loadProviderIdentity(dataDir: string): Promise<ProviderIdentity> {
  const dir = providerDir(dataDir);
  try {
    const registration = JSON.parse(
      await readFile(join(dir, 'registration.json'), 'utf8'),
    ) as ProviderRegistration;
    const pair = await readKeyCertPair(providerKeyPair(dataDir));
    return {
      registration,
      keyPem: pair.keyPem,
      certPem: pair.certPem,
      vaultCaCertPem: await readFile(join(dir, 'vault-ca.crt'), 'utf8'),
    };
  } catch (e) {
    if (isSecondsiteError(e, 'SECONDSITE_ERR_INTERNAL')) throw e; // a key and certificate that differ
    throw new SecondsiteError(
      'SECONDSITE_ERR_NOT_FOUND',
      `this management server is not registered with a vault (nothing in ${dir}); run 'secondsite manager register --key FILE --data-dir ${dataDir}'`,
      { dataDir },
    );
  }
}

export function providerClient(identity: ProviderIdentity): VaultClient {
  return new VaultClient({
    url: identity.registration.vaultUrl,
    caCertPem: identity.vaultCaCertPem,
    clientCert: { keyPem: identity.keyPem, certPem: identity.certPem },
  });
}

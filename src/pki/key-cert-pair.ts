/**
 * A key and its certificate as two files, `<base>.key` (0600) and `<base>.crt`, replaced by a new pair
 * without a crash ever leaving the key of one pair beside the certificate of the other
 * (docs/design/certificate-renewal.md section 3):
 *
 *   1. `createPendingKey`: `<base>.key.next` (0600) and a CSR for it;
 *   2. `installPending`: `<base>.crt.next.tmp` written and synced, renamed to `<base>.crt.next`, the
 *      folder synced: the commit point;
 *   3. then `.key.next` over `.key`, `.crt.next` over `.crt`, the folder synced.
 *
 * `recoverKeyCertPair` (the owner, at its start) rolls an interrupted install forward (a committed
 * `.crt.next`) or clears its leftovers (no commit). `readKeyCertPair` reads the pair an install past
 * its commit point gives, changing nothing, and checks that the key and the certificate belong
 * together.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SecondsiteError } from '../domain/errors.js';
import { exists } from './ca.js';
import { createKeyAndCsr } from './csr.js';

const READ_ATTEMPTS = 5;
const READ_RETRY_MS = 20;

export interface KeyCertPairPaths {
  readonly dir: string;
  readonly keyPath: string;
  readonly certPath: string;
  readonly pendingKeyPath: string;
  readonly committedCertPath: string;
  readonly stagedCertPath: string;
}

export interface KeyCertPair {
  readonly keyPem: string;
  readonly certPem: string;
}

export function keyCertPairPaths(dir: string, base: string): KeyCertPairPaths {
  const keyPath = join(dir, `${base}.key`);
  const certPath = join(dir, `${base}.crt`);
  return {
    dir,
    keyPath,
    certPath,
    pendingKeyPath: `${keyPath}.next`,
    committedCertPath: `${certPath}.next`,
    stagedCertPath: `${certPath}.next.tmp`,
  };
}

/** Phase 1: a new key beside the pair (replacing an earlier pending one) and a CSR for it. */
export async function createPendingKey(paths: KeyCertPairPaths, commonName: string): Promise<string> {
  if (await exists(paths.committedCertPath)) await rollForward(paths); // a committed install is kept
  await rm(paths.stagedCertPath, { force: true });
  const made = `${paths.pendingKeyPath}.tmp`;
  const csrPem = await createKeyAndCsr(made, commonName);
  await rename(made, paths.pendingKeyPath);
  return csrPem;
}

/** The pending key (PEM), to check an answered certificate against before installing it. */
export async function readPendingKey(paths: KeyCertPairPaths): Promise<string> {
  try {
    return await readFile(paths.pendingKeyPath, 'utf8');
  } catch {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_STATE',
      `no certificate request is pending here (${paths.pendingKeyPath} is missing): request a new certificate first`,
      { path: paths.pendingKeyPath },
    );
  }
}

/** True when `certPem` certifies the public key of `keyPem`. */
export function certificateMatchesKey(certPem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/**
 * Phases 2 and 3: installs `certPem` with the pending key. Refuses (installing nothing) a certificate
 * that does not certify the pending key. The caller checks the issuer and the name.
 */
/** The file operations of an install, in order (crash tests stop it after each one). */
export const INSTALL_STEPS = [
  'key-synced',
  'cert-staged',
  'committed',
  'key-renamed',
  'cert-renamed',
] as const;
export type InstallStep = (typeof INSTALL_STEPS)[number];

export async function installPending(
  paths: KeyCertPairPaths,
  certPem: string,
  /** Crash tests: called after each step; what it throws stops the install there. */
  afterStep: (step: InstallStep) => void = () => undefined,
): Promise<KeyCertPair> {
  const keyPem = await readPendingKey(paths);
  if (!certificateMatchesKey(certPem, keyPem)) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `the certificate does not certify the key pending in ${paths.pendingKeyPath}; nothing was installed`,
      { path: paths.pendingKeyPath },
    );
  }
  await syncFile(paths.pendingKeyPath);
  afterStep('key-synced');
  await writeSynced(paths.stagedCertPath, certPem);
  afterStep('cert-staged');
  await rename(paths.stagedCertPath, paths.committedCertPath);
  await syncFile(paths.dir);
  afterStep('committed');
  await rollForward(paths, afterStep);
  return { keyPem, certPem };
}

/**
 * Finishes an install a crash interrupted after its commit point, or clears the leftovers of one
 * interrupted before it. Only the owner of the pair calls it, at its start (a pending key of a renewal
 * under way would be cleared).
 */
export async function recoverKeyCertPair(paths: KeyCertPairPaths): Promise<void> {
  if (await exists(paths.committedCertPath)) {
    await rollForward(paths);
  } else {
    await rm(paths.stagedCertPath, { force: true });
    await rm(paths.pendingKeyPath, { force: true });
  }
  await rm(`${paths.pendingKeyPath}.tmp`, { force: true });
}

/**
 * The pair as installed, changing nothing: an install past its commit point reads as the new pair.
 * NOT_FOUND when there is no pair; INTERNAL when the key and the certificate do not belong together.
 */
export async function readKeyCertPair(paths: KeyCertPairPaths): Promise<KeyCertPair> {
  // an install renaming its files right now can show a key of one pair beside the certificate of the
  // other for a moment: read again, a few times, before calling the pair broken
  let last: SecondsiteError | undefined;
  for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
    if (attempt > 0) await sleep(READ_RETRY_MS);
    let pair: KeyCertPair;
    try {
      pair = await readOnce(paths);
    } catch (e) {
      last = new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `cannot read the key and certificate ${paths.keyPath} and ${paths.certPath}: ${(e as Error).message}`,
        { keyPath: paths.keyPath, certPath: paths.certPath },
      );
      continue;
    }
    if (certificateMatchesKey(pair.certPem, pair.keyPem)) return pair;
    last = new SecondsiteError(
      'SECONDSITE_ERR_INTERNAL',
      `${paths.certPath} does not certify the key in ${paths.keyPath}; restore them together from a backup, or register or enrol again`,
      { keyPath: paths.keyPath, certPath: paths.certPath },
    );
  }
  throw last as SecondsiteError; // set: READ_ATTEMPTS > 0
}

async function readOnce(paths: KeyCertPairPaths): Promise<KeyCertPair> {
  if (await exists(paths.committedCertPath)) {
    const keyPath = (await exists(paths.pendingKeyPath)) ? paths.pendingKeyPath : paths.keyPath;
    const [keyPem, certPem] = await Promise.all([
      readFile(keyPath, 'utf8'),
      readFile(paths.committedCertPath, 'utf8'),
    ]);
    return { keyPem, certPem };
  }
  const [keyPem, certPem] = await Promise.all([
    readFile(paths.keyPath, 'utf8'),
    readFile(paths.certPath, 'utf8'),
  ]);
  return { keyPem, certPem };
}

/** Phase 3 from wherever a crash stopped it: `.crt.next` is committed. */
async function rollForward(
  paths: KeyCertPairPaths,
  afterStep: (step: InstallStep) => void = () => undefined,
): Promise<void> {
  if (await exists(paths.pendingKeyPath)) await rename(paths.pendingKeyPath, paths.keyPath);
  afterStep('key-renamed');
  await rename(paths.committedCertPath, paths.certPath);
  await syncFile(paths.dir);
  afterStep('cert-renamed');
}

async function writeSynced(path: string, text: string): Promise<void> {
  const file = await open(path, 'w', 0o644);
  try {
    await file.writeFile(text);
    await file.datasync();
  } finally {
    await file.close();
  }
}

/** fsync of a file or a folder (a folder: its entries, after renames). */
async function syncFile(path: string): Promise<void> {
  const file = await open(path, 'r');
  try {
    await file.sync();
  } finally {
    await file.close();
  }
}

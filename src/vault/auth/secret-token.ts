/**
 * Bearer secrets: API tokens `ss_<tokenId>_<secret>` and registration key secrets. The vault stores
 * only SHA-256 of a secret and compares in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A random id with a prefix, e.g. `tok_3f9a...` (12 bytes, hex). */
export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString('hex')}`;
}

/** 32 random bytes, base64url. */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export function secretMatches(secret: string, storedSha256: Buffer): boolean {
  const got = sha256(secret);
  return got.length === storedSha256.length && timingSafeEqual(got, storedSha256);
}

const TOKEN_RE = /^ss_(tok_[0-9a-f]{24})_([A-Za-z0-9_-]{43})$/;

export function formatApiToken(tokenId: string, secret: string): string {
  return `ss_${tokenId}_${secret}`;
}

/** Splits a token into its id and secret, or null when it is not one. */
export function parseApiToken(token: string): { tokenId: string; secret: string } | null {
  const m = TOKEN_RE.exec(token);
  return m ? { tokenId: m[1] as string, secret: m[2] as string } : null;
}

import assert from 'node:assert/strict';
import type { PeerCertificate } from 'node:tls';
import { test } from 'node:test';
import { isSecondsiteError } from '../../domain/errors.js';
import { replicationClientOptions, type TlsIdentity } from './tls-config.js';

const identity = (issuersOf?: TlsIdentity['issuersOf']): TlsIdentity => ({
  hostId: 'host-a1',
  key: Buffer.from(''),
  cert: Buffer.from(''),
  ca: Buffer.from(''),
  ...(issuersOf ? { issuersOf } : {}),
});

const cert = (cn: string, issuerFingerprint: string): PeerCertificate =>
  ({
    subject: { CN: cn },
    subjectaltname: `DNS:${cn}`,
    issuerCertificate: { fingerprint256: issuerFingerprint },
  }) as unknown as PeerCertificate;

test("a replica pinned to its trust group's CA is refused with another trusted CA's certificate", () => {
  const check = (id: TlsIdentity, c: PeerCertificate) =>
    replicationClientOptions(id, 'host-b1').checkServerIdentity?.('host-b1', c);
  const pinned = identity((h) => (h === 'host-b1' ? new Set(['FP:B']) : null));
  assert.equal(check(pinned, cert('host-b1', 'FP:B')), undefined);
  const refused = check(pinned, cert('host-b1', 'FP:A'));
  assert.ok(
    isSecondsiteError(refused, 'SECONDSITE_ERR_UNAUTHORIZED') && /does not issue/.test(refused.message),
  );
  // not pinned: any trust anchor may issue it; the name must still match
  assert.equal(check(identity(), cert('host-b1', 'FP:A')), undefined);
  assert.ok(isSecondsiteError(check(identity(), cert('host-x', 'FP:B')), 'SECONDSITE_ERR_UNAUTHORIZED'));
});

/**
 * Security tests S10 (authentication and authorization before any data) on real TLS sockets: no client
 * certificate, a certificate from a foreign CA, a valid certificate of a host missing from the
 * authorization list, a storage location the host may not use, a HELLO naming another host, and a
 * replica whose certificate is not the expected one.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { isSecondsiteError } from '../../src/domain/errors.js';
import { MemoryCycleSnapshot } from './memory-cycle-snapshot.js';
import { RawPeer } from './raw-peer.js';
import { createPki, makeSender, startReceiver } from './replication-fixture.js';
import type { Pki, TestReceiver } from './replication-fixture.js';

let pki: Pki;
let rx: TestReceiver;

before(async () => {
  pki = await createPki();
  rx = await startReceiver(pki);
});

after(async () => {
  await rx.stop();
  await pki.cleanup();
});

const cycle = () => ({
  cycleId: 'c1',
  cutWallMs: 1,
  consistency: 'crash-consistent' as const,
  snapshots: [new MemoryCycleSnapshot('d', Buffer.alloc(65536, 1))],
});

/** Connects with raw TLS options, tries a HELLO, and reports how it ended. */
async function tryRaw(options: Parameters<typeof RawPeer.connectWith>[1]): Promise<'refused' | 'answered'> {
  let peer: RawPeer;
  try {
    peer = await RawPeer.connectWith(rx.port, options);
  } catch {
    return 'refused';
  }
  peer.send({
    kind: 'hello',
    retentionHours: 24,
    vmConfig: '',
    primaryHostId: 'host-a',
    relationshipId: 'vm-raw',
    storageLocation: 'gold',
    disks: [{ diskId: 'd', sizeBytes: 65536 }],
  });
  const f = await peer.next(3000).catch(() => null);
  peer.socket.destroy();
  return f && f.message.kind === 'welcome' ? 'answered' : 'refused';
}

test('a client without a certificate is refused in the handshake, before any frame', async () => {
  const failures = rx.receiver.counters.handshakeFailures;
  const r = await tryRaw({ ca: pki.hostB.ca, servername: 'host-b', minVersion: 'TLSv1.3' });
  assert.equal(r, 'refused');
  assert.ok(rx.receiver.counters.handshakeFailures > failures, 'the server saw a failed handshake');
  assert.deepEqual(rx.opened, []);
});

test('a certificate from a foreign CA is refused in the handshake', async () => {
  const failures = rx.receiver.counters.handshakeFailures;
  const r = await tryRaw({
    key: pki.foreignA.key,
    cert: pki.foreignA.cert,
    ca: pki.hostB.ca,
    servername: 'host-b',
    minVersion: 'TLSv1.3',
  });
  assert.equal(r, 'refused');
  assert.ok(rx.receiver.counters.handshakeFailures > failures);
  assert.deepEqual(rx.opened, []);
  // the real sender classifies it as a permanent authentication failure
  const sender = makeSender(pki.foreignA, rx.port, { policy: { maxAttempts: 3 } });
  const c = cycle();
  await assert.rejects(sender.shipCycle(c), (e) => isSecondsiteError(e) && e.retry === 'permanent');
  assert.equal(c.snapshots[0]?.abandoned, 1);
  assert.equal(c.snapshots[0]?.completed, 0);
});

test('a valid host missing from the authorization list is refused before it sends anything', async () => {
  const peer = await RawPeer.connect(rx.port, pki.hostC);
  // no frame sent: the refusal comes right after the handshake
  const err = await peer.nextError(3000);
  assert.equal(err?.code, 'SECONDSITE_ERR_PEER_NOT_AUTHORIZED');
  assert.match(err?.message ?? '', /host-c/);
  await peer.closedPromise;
  const sender = makeSender(pki.hostC, rx.port);
  await assert.rejects(sender.shipCycle(cycle()), (e) => {
    assert.ok(isSecondsiteError(e, 'SECONDSITE_ERR_PEER_NOT_AUTHORIZED'), String(e));
    assert.match(e.message, /host-c/);
    return true;
  });
  assert.deepEqual(rx.opened, []);
  assert.equal(sender.stats.state, 'failed');
  assert.equal(sender.stats.lastError?.code, 'SECONDSITE_ERR_PEER_NOT_AUTHORIZED');
});

test('an authorized host asking for a storage location it may not use is refused, naming both', async () => {
  const sender = makeSender(pki.hostA, rx.port, { storageLocation: 'silver' });
  await assert.rejects(sender.shipCycle(cycle()), (e) => {
    assert.ok(isSecondsiteError(e, 'SECONDSITE_ERR_PEER_NOT_AUTHORIZED'), String(e));
    assert.match(e.message, /host-a/);
    assert.match(e.message, /silver/);
    return true;
  });
  assert.deepEqual(rx.opened, []);
});

test('a HELLO that names another primary than the certificate is refused', async () => {
  const peer = await RawPeer.connect(rx.port, pki.hostA);
  peer.send({
    kind: 'hello',
    retentionHours: 24,
    vmConfig: '',
    primaryHostId: 'host-z',
    relationshipId: 'vm-raw',
    storageLocation: 'gold',
    disks: [{ diskId: 'd', sizeBytes: 4096 }],
  });
  const err = await peer.nextError();
  assert.equal(err?.code, 'SECONDSITE_ERR_UNAUTHORIZED');
  assert.deepEqual(rx.opened, []);
});

test('the sender refuses a replica whose certificate names another host', async () => {
  const sender = makeSender(pki.hostA, rx.port, { replicaHostId: 'host-x' });
  const c = cycle();
  await assert.rejects(sender.shipCycle(c), (e) => isSecondsiteError(e) && e.retry === 'permanent');
  assert.equal(c.snapshots[0]?.abandoned, 1);
  assert.deepEqual(rx.opened, []);
});

test('the authorized host replicates into its storage location', async () => {
  const sender = makeSender(pki.hostA, rx.port);
  const r = await sender.shipCycle(cycle());
  assert.equal(r.point.sequence, 1);
  assert.deepEqual(rx.opened, ['vm-1@gold']);
  sender.disconnect();
});

test('a relationship id that is not a plain name is refused before any store is opened', async () => {
  for (const rel of ['../etc', 'a/b', '.hidden', 'x..y']) {
    const peer = await RawPeer.connect(rx.port, pki.hostA, rel);
    peer.send({
      kind: 'hello',
      retentionHours: 24,
      vmConfig: '',
      primaryHostId: 'host-a',
      relationshipId: rel,
      storageLocation: 'gold',
      disks: [{ diskId: 'd', sizeBytes: 4096 }],
    });
    const err = await peer.nextError();
    assert.equal(err?.code, 'SECONDSITE_ERR_UNSAFE_PATH', rel);
  }
  assert.ok(!rx.opened.some((o) => !o.startsWith('vm-1@')), rx.opened.join(','));
});

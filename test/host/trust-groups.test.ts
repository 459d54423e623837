/**
 * Two sites with their own CAs (docs/design/vault.md section 6.2): a replica host of site B accepts a
 * site A host only once its managed authorization list names it under a trust group holding site A's
 * CA; a site B certificate that carries the same host id is refused; the list survives a restart and
 * refuses a list that does not fit the host, changing nothing.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ControlClient } from '../../src/control-api/control-client.js';
import { isSecondsiteError, type ErrorCode } from '../../src/domain/errors.js';
import type { ReplicaView } from '../../src/host/agent/replica-service.js';
import { loadTlsIdentity, replicationClientOptions } from '../../src/host/pki/tls-config.js';
import { HostLab } from '../../src/lab/host-lab.js';
import { caPaths } from '../../src/pki/ca.js';
import { issueHostCert } from '../../src/pki/csr.js';
import type { AuthorizationView } from '../../src/protocol/host-api/authorization.schema.js';
import { PEER_ALPN } from '../../src/protocol/host-api/peer.schema.js';
import { cleanupsAfterAll, MiB, peerClient, waitFor } from './fixtures.js';

const cleanups = cleanupsAfterAll();

test('a replica trusts another site only for the hosts and storage locations its trust group allows', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ss-trust-'));
  const lab = await HostLab.create(dir, [
    { hostId: 'host-a1', site: 'a' },
    { hostId: 'host-b1', site: 'b' },
  ]);
  cleanups.push(async () => {
    await lab.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const a = lab.host('host-a1');
  const b = lab.host('host-b1');
  const caA = await readFile(caPaths(lab.caDir('a')).certPath, 'utf8');
  const caB = await readFile(caPaths(lab.caDir('b')).certPath, 'utf8');
  const refusedWith = (code: ErrorCode) => (e: unknown) => isSecondsiteError(e, code);

  // before any trust: site A's host cannot even reach site B's peer API (neither trusts the other's CA)
  await assert.rejects(
    (await peerClient(lab, 'host-a1', 'host-b1')).get('/peer/v1/replicas/v/failover'),
    /self-signed certificate|CONNECTION_LOST|connection/i,
  );

  // lists that do not fit the host are refused whole
  await assert.rejects(
    b.client.call('PUT', '/v1/authorization', {
      revision: 1,
      entries: [{ primaryHostId: 'host-a1', storageLocation: 'nowhere', trustGroup: 'site-a' }],
      trustGroups: [{ name: 'site-a', caCertPem: caA }],
    }),
    (e: unknown) =>
      isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT') && /storage location 'nowhere'/.test(e.message),
  );
  await assert.rejects(
    b.client.call('PUT', '/v1/authorization', {
      revision: 1,
      entries: [{ primaryHostId: 'host-a1', storageLocation: 'default', trustGroup: 'site-x' }],
      trustGroups: [{ name: 'site-a', caCertPem: caA }],
    }),
    (e: unknown) => isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT') && /site-x/.test(e.message),
  );
  assert.equal((await b.client.get<AuthorizationView>('/v1/authorization')).revision, 0);

  // B trusts site A's host-a1 into 'default'; A trusts site B's CA (to verify the replica)
  const managed = {
    revision: 3,
    entries: [{ primaryHostId: 'host-a1', storageLocation: 'default', trustGroup: 'site-a' }],
    trustGroups: [{ name: 'site-a', caCertPem: caA }],
  };
  const view = await b.client.call<AuthorizationView>('PUT', '/v1/authorization', managed);
  assert.deepEqual(
    view.entries.map((e) => [e.primaryHostId, e.source]),
    [['host-a1', 'managed']],
  );
  // the same revision and content again is a no-op; an older revision is refused
  await b.client.call('PUT', '/v1/authorization', managed);
  await assert.rejects(
    b.client.call('PUT', '/v1/authorization', { ...managed, revision: 2 }),
    refusedWith('SECONDSITE_ERR_INVALID_STATE'),
  );
  await a.client.call('PUT', '/v1/authorization', {
    revision: 1,
    entries: [],
    trustGroups: [{ name: 'site-b', caCertPem: caB }],
  });

  await a.client.post('/v1/disks', { diskId: 'v-d0', sizeBytes: 4 * MiB });
  await a.client.post('/v1/relationships', {
    vmId: 'v',
    diskIds: ['v-d0'],
    replica: { hostId: 'host-b1', address: '127.0.0.1', port: b.replicationPort },
    policy: { copyFrequencySeconds: 0, chunkBytes: 256 * 1024 },
  });
  await waitFor(
    'a point from site A',
    async () => (await b.client.get<ReplicaView>('/v1/replicas/v')).latestPoint,
    60_000,
  );

  // a certificate from site B's CA naming host-a1 is not host-a1
  const impostorDir = join(dir, 'impostor');
  await issueHostCert({ caDir: lab.caDir('b'), name: 'host-a1', outDir: impostorDir });
  const impostor = await loadTlsIdentity(impostorDir, 'host-a1');
  const impostorTls = { ...replicationClientOptions(impostor, 'host-b1'), ALPNProtocols: [PEER_ALPN] };
  const asImpostor = ControlClient.peer({
    host: '127.0.0.1',
    port: b.replicationPort,
    hostId: 'host-b1',
    tls: impostorTls,
  });
  await assert.rejects(
    asImpostor.get('/peer/v1/replicas/v/failover'),
    refusedWith('SECONDSITE_ERR_CONNECTION_LOST'),
  );
  // while the real host-a1 (trusting site B's CA, as its agent does now) reaches it
  const realA = await loadTlsIdentity(join(a.stateDir, 'pki'), 'host-a1');
  const realATls = {
    ...replicationClientOptions({ ...realA, ca: Buffer.from(`${caA}\n${caB}`) }, 'host-b1'),
    ALPNProtocols: [PEER_ALPN],
  };
  const asA = ControlClient.peer({
    host: '127.0.0.1',
    port: b.replicationPort,
    hostId: 'host-b1',
    tls: realATls,
  });
  await asA.get('/peer/v1/replicas/v/failover');

  // the managed list survives a restart, and replication goes on
  const before = (await b.client.get<ReplicaView>('/v1/replicas/v')).latestPoint?.pointId;
  await lab.stopHost('host-b1');
  await lab.start('host-b1');
  assert.equal((await b.client.get<AuthorizationView>('/v1/authorization')).revision, 3);
  await waitFor(
    'a newer point after the replica restarted',
    async () => {
      const p = (await b.client.get<ReplicaView>('/v1/replicas/v')).latestPoint;
      return p && p.pointId !== before ? p : null;
    },
    60_000,
  );
});

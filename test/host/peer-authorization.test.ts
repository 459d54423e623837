/**
 * A relationship has one primary on its replica host (docs/design/failover.md section 8.2): another
 * host, even one authorized to replicate into the same storage location, can neither replicate into
 * it nor act on it through the peer API; a host the replica does not authorize cannot even reach the
 * peer API.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isSecondsiteError } from '../../src/domain/errors.js';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import type { ReplicaView } from '../../src/host/agent/replica-service.js';
import { HostLab } from '../../src/lab/host-lab.js';
import { cleanupsAfterAll, MiB, peerClient, waitFor } from './fixtures.js';

const cleanups = cleanupsAfterAll();

test('another host can neither replicate into a relationship nor act on it; an unauthorized host cannot reach the peer API', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ss-peerauth-'));
  const lab = await HostLab.create(dir, [
    { hostId: 'host-a' },
    { hostId: 'host-b', authorize: ['host-a', 'host-c'] },
    { hostId: 'host-c' },
    { hostId: 'host-d' },
  ]);
  cleanups.push(async () => {
    await lab.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const b = lab.host('host-b');
  const enable = async (from: string): Promise<void> => {
    const h = lab.host(from);
    await h.client.post('/v1/disks', { diskId: 'v-d0', sizeBytes: 4 * MiB });
    await h.client.post('/v1/relationships', {
      vmId: 'v',
      diskIds: ['v-d0'],
      replica: { hostId: 'host-b', address: '127.0.0.1', port: b.replicationPort },
      policy: { copyFrequencySeconds: 0, chunkBytes: 256 * 1024 },
    });
  };
  await enable('host-a');
  const first = await waitFor(
    'a point from host-a',
    async () => (await b.client.get<ReplicaView>('/v1/replicas/v')).latestPoint,
    60_000,
  );

  // host-c is authorized for the same location, but v belongs to host-a: its cycles are refused
  await enable('host-c');
  const refused = await waitFor(
    'host-c refused',
    async () => {
      const r = await lab.host('host-c').client.get<RelationshipView>('/v1/relationships/v');
      return r.report.lastError?.code === 'SECONDSITE_ERR_PEER_NOT_AUTHORIZED' ? r : null;
    },
    60_000,
  );
  assert.match(
    refused.report.lastError?.message ?? '',
    /already replicates into this host from another primary/,
  );
  const forbidden = (e: unknown): boolean => isSecondsiteError(e, 'SECONDSITE_ERR_FORBIDDEN');
  const fromC = await peerClient(lab, 'host-c', 'host-b');
  await assert.rejects(fromC.delete('/peer/v1/replicas/v'), forbidden);
  await assert.rejects(
    fromC.post('/peer/v1/replicas/v/planned-failover', { pointId: first.pointId }),
    forbidden,
  );
  await assert.rejects(fromC.get('/peer/v1/replicas/..%2F..%2Fhost.json/failover'), forbidden);
  // host-d is not in host-b's authorization list: the peer API hangs up on it
  const fromD = await peerClient(lab, 'host-d', 'host-b');
  await assert.rejects(fromD.get('/peer/v1/replicas/v/failover'), (e: unknown) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_CONNECTION_LOST'),
  );
  // host-a's replication goes on, and the replica is still host-a's
  const later = await waitFor(
    'another point from host-a',
    async () => {
      const v = await b.client.get<ReplicaView>('/v1/replicas/v');
      return v.latestPoint && v.latestPoint.sequence > first.sequence ? v : null;
    },
    60_000,
  );
  assert.ok(later.latestPoint);
  const fromA = await peerClient(lab, 'host-a', 'host-b');
  assert.equal((await fromA.get<{ state: string }>('/peer/v1/replicas/v/failover')).state, 'receiving');
});

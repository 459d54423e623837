/**
 * The policy's timing: a scheduled initial replication starts at its time (and keeps its schedule over
 * an agent restart), and a resync that change tracking needs after an unclean stop waits as the
 * policy says: 'manual' until an operator asks, 'window' until the window (or an operator) lets it
 * run. While held, no cycle runs, the state is resync-required with the reason, and health is Critical.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NbdClient } from '../../src/guest/nbd-client.js';
import { Rng, seedFrom } from '../../src/domain/random.js';
import type { RelationshipView } from '../../src/host/agent/relationship-service.js';
import type { ReplicaView } from '../../src/host/agent/replica-service.js';
import type { HostLab } from '../../src/lab/host-lab.js';
import { MiB, cleanupsAfterAll, createDisks, twoHostLab, waitFor } from './fixtures.js';

const cleanups = cleanupsAfterAll();
const DISK_BYTES = 8 * MiB;

async function relationship(lab: HostLab, id: string): Promise<RelationshipView> {
  return lab.host('host-a').client.get<RelationshipView>(`/v1/relationships/${id}`);
}

async function latestSequence(lab: HostLab, id: string): Promise<number> {
  try {
    const v = await lab.host('host-b').client.get<ReplicaView>(`/v1/replicas/${id}`);
    return v.latestPoint?.sequence ?? 0;
  } catch {
    return 0; // no replica yet
  }
}

function hhmm(minuteOfDay: number): string {
  const m = ((minuteOfDay % 1440) + 1440) % 1440;
  return `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
}

test('scheduled initial replication, and resyncs held back by manual and window policies', async () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 3131);
  const rng = new Rng(seed);
  const { lab, cleanup } = await twoHostLab('ss-policy-');
  cleanups.push(cleanup);
  const a = lab.host('host-a');
  const b = lab.host('host-b');
  await createDisks(
    lab,
    'host-a',
    ['m', 'w', 's'].map((vm) => ({ diskId: `${vm}-d0`, sizeBytes: DISK_BYTES })),
  );
  for (const vm of ['m', 'w', 's']) {
    const c = await NbdClient.connect({ socketPath: a.nbdSocket, exportName: `${vm}-d0` });
    await c.write(rng.int(DISK_BYTES / 65536) * 65536, rng.fill(Buffer.alloc(65536)) as Buffer, {
      fua: true,
    });
    await c.close();
  }
  const nowMinute = Math.floor(Date.now() / 60_000) % 1440;
  // a window that certainly does not hold the next few minutes
  const window = `${hhmm(nowMinute + 120)}-${hhmm(nowMinute + 180)}`;
  const enable = (vm: string, policy: object, extra: object = {}): Promise<RelationshipView> =>
    a.client.post<RelationshipView>('/v1/relationships', {
      vmId: vm,
      diskIds: [`${vm}-d0`],
      replica: { hostId: 'host-b', address: '127.0.0.1', port: b.replicationPort },
      policy: { copyFrequencySeconds: 0, chunkBytes: 256 * 1024, ...policy },
      ...extra,
    });
  await enable('m', { resyncMode: 'manual' });
  await enable('w', { resyncMode: 'window', resyncWindow: window });
  await assert.rejects(
    enable('x', { resyncMode: 'window' }),
    /resyncWindow/,
    'a window policy without a window is refused',
  );
  for (const vm of ['m', 'w'])
    await waitFor(
      `${vm} replicating`,
      async () => (await relationship(lab, vm)).protectionState === 'replicating',
      60_000,
    );

  const startAtMs = Date.now() + 6000;
  const s = await enable('s', {}, { initialReplicationStartAt: new Date(startAtMs).toISOString() });
  assert.equal(s.protectionState, 'ready-for-initial-replication');
  assert.match(s.waitingFor ?? '', /scheduled initial replication at/);
  await assert.rejects(
    a.client.post('/v1/relationships/s/resync'),
    /ready-for-initial-replication/,
    'a refused operation names the state',
  );

  // unclean stop of the primary's agent: every disk's tracking now demands a resync
  await lab.kill('host-a');
  await lab.start('host-a');
  if (Date.now() < startAtMs - 1000) {
    const again = await relationship(lab, 's');
    assert.equal(again.protectionState, 'ready-for-initial-replication', 'the schedule survives a restart');
    assert.equal(await latestSequence(lab, 's'), 0, 'nothing is sent before the start time');
  }
  const firstOfS = await waitFor(
    'the scheduled initial replication',
    async () => latestSequence(lab, 's'),
    60_000,
  );
  assert.ok(firstOfS >= 1);
  assert.ok(Date.now() >= startAtMs, 'not before its time');
  await waitFor(
    's replicating',
    async () => (await relationship(lab, 's')).protectionState === 'replicating',
  );

  const held: Record<string, number> = {};
  for (const [vm, reason] of [
    ['m', /manually/],
    ['w', new RegExp(`window ${window}`)],
  ] as const) {
    const v = await waitFor(`${vm} held in resync-required`, async () => {
      const r = await relationship(lab, vm);
      return r.protectionState === 'resync-required' ? r : null;
    });
    assert.match(v.waitingFor ?? '', reason);
    assert.equal(v.report.health.level, 'Critical');
    held[vm] = await latestSequence(lab, vm);
  }
  await new Promise((r) => setTimeout(r, 3000));
  for (const vm of ['m', 'w'])
    assert.equal(
      await latestSequence(lab, vm),
      held[vm],
      `no cycle of ${vm} runs while its resync is held back`,
    );
  await assert.rejects(a.client.post('/v1/relationships/m/prepare-failover'), /resync-required/);

  // an operator's resync runs at once, whatever the policy
  for (const vm of ['m', 'w']) {
    await a.client.post(`/v1/relationships/${vm}/resync`);
    await waitFor(
      `a point of ${vm} after the resync`,
      async () => (await latestSequence(lab, vm)) > (held[vm] ?? 0),
      60_000,
    );
    await waitFor(
      `${vm} replicating again`,
      async () => (await relationship(lab, vm)).protectionState === 'replicating',
    );
  }
});

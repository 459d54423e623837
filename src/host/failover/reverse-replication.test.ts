/**
 * `replica seed` on a host that ran the VM after a failover (failback, then reverse again): a kill at
 * any step must leave this host unable to start the VM by itself, because the other host runs it now.
 * At a restart the failover service starts the VM of a 'failed-over' record, and only a prepared or
 * fenced relationship refuses that start; so at every step, a 'failed-over' record implies such a
 * relationship. The services are stand-ins that keep what each call made durable and stop the
 * "machine" at the n-th mutating call; the seeding re-issued after each stop completes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DiskService } from '../agent/disk-service.js';
import type { RelationshipService } from '../agent/relationship-service.js';
import type { ReplicaService, ReplicaView } from '../agent/replica-service.js';
import type { VmService } from '../agent/vm-service.js';
import type { FailoverService } from './failover-service.js';
import { seedReplicaFromLocalDisks, type ReverseDeps } from './reverse-replication.js';

/** What survives a kill -9: the files each service keeps. */
interface Durable {
  relationship: 'prepared' | 'fenced' | null;
  record: 'failed-over' | null;
  diskKnown: boolean;
  imageIn: 'disks' | 'replica';
}

class Stopped extends Error {}

function hostOver(durable: Durable, stopAtCall: number): { deps: ReverseDeps; calls: () => number } {
  let calls = 0;
  const step = (): void => {
    if (calls >= stopAtCall) throw new Stopped(`machine stopped at call ${calls}`);
    calls++;
  };
  const view = (): ReplicaView => ({
    relationshipId: 'vm1',
    storageLocation: 'default',
    epoch: 2,
    disks: [{ diskId: 'vm1-d0', sizeBytes: 4096 }],
    points: [
      {
        pointId: 'rp-1',
        sequence: 1,
        epoch: 2,
        cycleId: 'seed',
        cutWallMs: 1,
        committedWallMs: 1,
        consistency: 'crash-consistent',
      },
    ],
    latestPoint: null,
    lagMs: null,
    exports: [],
    undo: { files: 0, longestList: 0, backgroundErrors: 0 },
  });
  const disks = {
    get: (diskId: string) =>
      durable.diskKnown ? Promise.resolve({ diskId, sizeBytes: 4096 }) : Promise.reject(new Error('no disk')),
    hasImage: () => Promise.resolve(durable.imageIn === 'disks'),
    imagePath: (diskId: string) => `/disks/${diskId}.raw`,
    release: () => Promise.resolve(step()),
    forget: () => {
      step();
      durable.diskKnown = false;
      return Promise.resolve();
    },
  };
  const relationships = {
    list: () =>
      durable.relationship === null
        ? []
        : [{ definition: { relationshipId: 'vm1', vmId: 'vm1', state: durable.relationship } }],
    // (where the relationship service has it) a prepared relationship is fenced before it goes
    failedOverAway: () => {
      step();
      durable.relationship = 'fenced';
      return Promise.resolve();
    },
    disable: () => {
      step();
      durable.relationship = null;
      return Promise.resolve(true);
    },
  };
  const replicas = {
    has: () => durable.imageIn === 'replica',
    get: () => Promise.resolve(view()),
    seed: () => {
      step();
      durable.imageIn = 'replica';
      return Promise.resolve(view());
    },
  };
  const failovers = {
    retire: () => {
      step();
      durable.record = null;
      return Promise.resolve();
    },
  };
  const vms = { isRunning: () => Promise.resolve(false) };
  return {
    deps: {
      disks: disks as unknown as DiskService,
      relationships: relationships as unknown as RelationshipService,
      replicas: replicas as unknown as ReplicaService,
      vms: vms as unknown as VmService,
      failovers: failovers as unknown as FailoverService,
    },
    calls: () => calls,
  };
}

const request = { diskIds: ['vm1-d0'], epoch: 2, storageLocation: 'default' };

test('a kill at any step of replica seed after a failback never lets this host restart the VM', async () => {
  const total = hostOver(fresh(), Infinity);
  await seedReplicaFromLocalDisks(total.deps, 'vm1', request);
  const mutating = total.calls();
  assert.ok(mutating >= 4, `the seeding makes ${mutating} mutating calls`);
  for (let stopAt = 0; stopAt <= mutating; stopAt++) {
    const durable = fresh();
    await seedReplicaFromLocalDisks(hostOver(durable, stopAt).deps, 'vm1', request).catch((e: unknown) => {
      if (!(e instanceof Stopped)) throw e;
    });
    assert.ok(
      durable.record === null || durable.relationship !== null,
      `stopped at call ${stopAt}: a 'failed-over' record without the relationship that refuses the VM's start (${JSON.stringify(durable)})`,
    );
    // restarted, the seeding is re-issued and completes
    const view = await seedReplicaFromLocalDisks(hostOver(durable, Infinity).deps, 'vm1', request);
    assert.deepEqual(
      view.points.map((p) => p.cycleId),
      ['seed'],
    );
    assert.deepEqual(
      durable,
      { relationship: null, record: null, diskKnown: false, imageIn: 'replica' },
      `stopped at call ${stopAt}, re-issued`,
    );
  }
});

function fresh(): Durable {
  return { relationship: 'prepared', record: 'failed-over', diskKnown: true, imageIn: 'disks' };
}

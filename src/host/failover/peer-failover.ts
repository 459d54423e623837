/**
 * The one-command planned failover (docs/design/failover.md section 7.2) and the two peer calls it
 * makes. On the primary, `plannedFailover`:
 *
 *   1. intent    `<stateDir>/protection/<rel>.planned-failover`: what the later steps need (the replica
 *                endpoint, the policy, the disks), so a run cut short by a crash can be run again
 *   2. prepare   shut the VM down, ship the last changes, wait for the final point (idempotent)
 *   3. peer      replica: fail over to exactly that point and commit (idempotent there)
 *   4. fence     the relationship here is `failed-over-away`: the VM can no longer start on this host
 *   5. reverse   (with --reverse) this host's disks become the seeded replica at the failover's epoch,
 *                then peer: the new primary enables replication back to this host (existing copy: the
 *                first cycle compares digests and sends only what differs)
 *   6. done      the result is kept in `<rel>.planned-failover.done` and the intent removed, so running
 *                the command again after it finished (say, its answer was lost) answers the same
 *
 * Each step is idempotent and the intent survives a crash, so running the command again finishes the
 * job. Peer calls go to the replica's replication port over the hosts' mutual TLS with ALPN
 * `secondsite-peer/1`; the replica acts only for the host that replicates into the relationship.
 */
import { join } from 'node:path';
import { SecondsiteError } from '../../domain/errors.js';
import type { ReplicationPolicy } from '../../protocol/host-api/relationships.schema.js';
import {
  PEER_ALPN,
  peerPlannedFailoverBodySchema,
  peerReverseBodySchema,
  type PlannedFailoverBody,
} from '../../protocol/host-api/peer.schema.js';
import { parseBody } from '../../protocol/host-api/schema.js';
import { ControlClient } from '../../control-api/control-client.js';
import type { Route } from '../../control-api/control-server.js';
import type {
  RelationshipDefinition,
  RelationshipService,
  RelationshipView,
} from '../agent/relationship-service.js';
import type { ReplicaService, ReplicaView } from '../agent/replica-service.js';
import { readWholeFile, replaceFileAtomically } from '../disks/atomic-file.js';
import type { Logger } from '../../observability/logger.js';
import { replicationClientOptions, type TlsIdentity } from '../pki/tls-config.js';
import type { Storage } from '../storage/storage.js';
import type { GuestAppView } from '../vm/vm-driver.js';
import type { FailoverService, FailoverView } from './failover-service.js';
import { preparePlannedFailover } from './planned-failover.js';
import { seedReplicaFromLocalDisks, type ReverseDeps } from './reverse-replication.js';

export interface PeerFailoverDeps extends ReverseDeps {
  readonly storage: Storage;
  readonly stateDir: string;
  readonly identity: () => Promise<TlsIdentity>;
  /** This host's replication listener (what the new primary dials for reverse replication). */
  readonly replicationListen: () => { host: string; port: number | null };
  readonly log: Logger;
}

/** What a planned failover run needs after the relationship is gone (step 1). */
interface PlannedIntent {
  readonly format: 'secondsite-planned-failover-1';
  readonly relationshipId: string;
  readonly replica: { hostId: string; address: string; port: number };
  readonly policy: ReplicationPolicy;
  readonly diskIds: string[];
}

export interface PlannedFailoverResult {
  relationshipId: string;
  finalPoint: { pointId: string };
  /** The guest's report when it shut down here (null when it was already off, or on a re-run). */
  guestAtShutdown: GuestAppView | null;
  /** The replica's failover, committed: it runs the VM now. */
  replica: FailoverView;
  /** With --reverse: the seeded replica on this host, and the new primary's relationship. */
  reverse: { replica: ReplicaView; relationship: RelationshipView } | null;
}

/** What a relationship id may look like here (it names files): checked before anything is looked up. */
const RELATIONSHIP_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$/;

const intentPath = (deps: PeerFailoverDeps, relationshipId: string): string =>
  join(deps.stateDir, 'protection', `${relationshipId}.planned-failover`);
const donePath = (deps: PeerFailoverDeps, relationshipId: string): string =>
  `${intentPath(deps, relationshipId)}.done`;

async function readIntent(deps: PeerFailoverDeps, relationshipId: string): Promise<PlannedIntent | null> {
  const raw = await readWholeFile(deps.storage, intentPath(deps, relationshipId));
  if (!raw) return null;
  const intent = JSON.parse(raw.toString('utf8')) as PlannedIntent;
  return intent.format === 'secondsite-planned-failover-1' ? intent : null;
}

async function peerClient(
  deps: Pick<PeerFailoverDeps, 'identity'>,
  replica: PlannedIntent['replica'],
): Promise<ControlClient> {
  const tls = {
    ...replicationClientOptions(await deps.identity(), replica.hostId),
    ALPNProtocols: [PEER_ALPN],
  };
  return ControlClient.peer({ host: replica.address, port: replica.port, hostId: replica.hostId, tls });
}

/** Runs (or finishes) a planned failover of `relationshipId` from this host to its replica. */
export async function plannedFailover(
  deps: PeerFailoverDeps,
  relationshipId: string,
  options: PlannedFailoverBody,
): Promise<PlannedFailoverResult> {
  const log = deps.log.child({ relationshipId });
  const def = deps.relationships
    .list()
    .find((r) => r.definition.relationshipId === relationshipId)?.definition;
  let intent = await readIntent(deps, relationshipId);
  if (!intent) {
    if (!def) {
      // finished before (the relationship went with the seeding): answer as it did
      const done = await readWholeFile(deps.storage, donePath(deps, relationshipId));
      if (done) return JSON.parse(done.toString('utf8')) as PlannedFailoverResult;
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `no replication relationship '${relationshipId}' on this host; run the planned failover on the VM's primary host`,
        { relationshipId },
      );
    }
    intent = {
      format: 'secondsite-planned-failover-1',
      relationshipId,
      replica: { hostId: def.replica.hostId, address: def.replica.address, port: def.replica.port },
      policy: def.policy,
      diskIds: [...def.diskIds],
    };
    await deps.storage.mkdir(join(deps.stateDir, 'protection'));
    if (await deps.storage.exists(donePath(deps, relationshipId)))
      await deps.storage.unlink(donePath(deps, relationshipId));
    await replaceFileAtomically(
      deps.storage,
      intentPath(deps, relationshipId),
      Buffer.from(JSON.stringify(intent)),
    );
  }
  const peer = await peerClient(deps, intent.replica);

  let finalPointId: string;
  let replica: FailoverView;
  let guestAtShutdown: GuestAppView | null = null;
  if (def && def.state !== 'fenced') {
    log.info('planned failover: shutting the VM down and shipping its last changes');
    const prepared = await preparePlannedFailover(
      deps.vms,
      deps.relationships,
      relationshipId,
      options.timeoutMs,
    );
    finalPointId = prepared.finalPoint.pointId;
    guestAtShutdown = prepared.guestAtShutdown;
  } else {
    // a run cut short after step 3 or 4: the replica knows the point
    finalPointId = def?.preparedPoint?.pointId ?? '';
  }
  if (finalPointId !== '') {
    log.info('planned failover: the replica fails over to the final point', { pointId: finalPointId });
    replica = await peer.post<FailoverView>(
      `/peer/v1/replicas/${encodeURIComponent(relationshipId)}/planned-failover`,
      {
        pointId: finalPointId,
      },
    );
  } else {
    replica = await peer.get<FailoverView>(
      `/peer/v1/replicas/${encodeURIComponent(relationshipId)}/failover`,
    );
    if (replica.state !== 'failed-over') {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `the planned failover of ${relationshipId} cannot be finished: this host no longer knows the final point and ${intent.replica.hostId} is in state ${replica.state}; finish it there ('secondsite host failover start/commit')`,
        { relationshipId, replicaState: replica.state },
      );
    }
    finalPointId = replica.pointId ?? '';
  }
  if (def && def.state !== 'fenced') await deps.relationships.failedOverAway(relationshipId);

  let reverse: PlannedFailoverResult['reverse'] = null;
  if (options.reverse) {
    const listen = deps.replicationListen();
    const address = options.reverseAddress ?? listen.host;
    if (listen.port === null || address === '0.0.0.0' || address === '::') {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        listen.port === null
          ? 'this host has no replication listener (no certificate), so it cannot be a replica; the failover is done, set up reverse replication later'
          : `this host listens on ${address}; pass the address the new primary should dial (--reverse-address); the failover is done`,
      );
    }
    log.info('reverse replication: seeding the replica from this host’s disks', { epoch: replica.epoch });
    const seeded = await seedReplicaFromLocalDisks(deps, relationshipId, {
      diskIds: intent.diskIds,
      epoch: replica.epoch,
      storageLocation: options.reverseStorageLocation,
    });
    const relationship = await peer.post<RelationshipView>(
      `/peer/v1/relationships/${encodeURIComponent(relationshipId)}/reverse`,
      {
        address,
        port: listen.port,
        storageLocation: options.reverseStorageLocation,
        policy: intent.policy,
      },
    );
    reverse = { replica: seeded, relationship };
  }
  const result: PlannedFailoverResult = {
    relationshipId,
    finalPoint: { pointId: finalPointId },
    guestAtShutdown,
    replica,
    reverse,
  };
  await replaceFileAtomically(
    deps.storage,
    donePath(deps, relationshipId),
    Buffer.from(JSON.stringify(result)),
  );
  await deps.storage.unlink(intentPath(deps, relationshipId));
  log.info('planned failover done', { pointId: finalPointId, reverse: options.reverse });
  return result;
}

/** `replication disable --delete-replica`: the primary asks the replica host to delete its replica. */
export async function deleteReplicaOnPeer(
  deps: Pick<PeerFailoverDeps, 'identity'>,
  definition: RelationshipDefinition,
): Promise<boolean> {
  const { hostId, address, port } = definition.replica;
  const peer = await peerClient(deps, { hostId, address, port });
  const r = await peer.delete<{ deleted: boolean }>(
    `/peer/v1/replicas/${encodeURIComponent(definition.relationshipId)}`,
  );
  return r.deleted;
}

/** The replica side's peer routes; each acts only for the host that replicates into the relationship. */
export function peerFailoverRoutes(
  deps: () => {
    replicas: ReplicaService;
    failovers: FailoverService;
    relationships: RelationshipService;
  },
): Route[] {
  const requirePrimary = async (relationshipId: string, caller: string | undefined): Promise<string> => {
    const primary = RELATIONSHIP_ID_RE.test(relationshipId)
      ? await deps().replicas.primaryOf(relationshipId)
      : null;
    if (caller === undefined || primary !== caller) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_FORBIDDEN',
        `host ${caller ?? '?'} may not act on relationship '${relationshipId.slice(0, 64)}' on this host: only the host that replicates into it may`,
        { caller: caller ?? null },
      );
    }
    return primary;
  };
  return [
    {
      method: 'GET',
      path: '/peer/v1/replicas/:id/failover',
      handler: async ({ params, callerHostId }) => {
        const id = params['id'] ?? '';
        await requirePrimary(id, callerHostId);
        return { body: deps().failovers.get(id) };
      },
    },
    {
      method: 'POST',
      path: '/peer/v1/replicas/:id/planned-failover',
      handler: async ({ params, body, callerHostId }) => {
        const id = params['id'] ?? '';
        await requirePrimary(id, callerHostId);
        const b = parseBody(peerPlannedFailoverBodySchema, body, 'planned failover request');
        const { failovers } = deps();
        const current = failovers.get(id);
        if (current.state === 'failed-over' && current.pointId === b.pointId) return { body: current };
        // the primary shut its VM down and shipped the point: no need to probe it (force)
        if (current.state !== 'failover-pending-commit' || current.pointId !== b.pointId)
          await failovers.failover(id, { pointId: b.pointId, force: true });
        return { body: await failovers.commit(id) };
      },
    },
    {
      method: 'DELETE',
      path: '/peer/v1/replicas/:id',
      handler: async ({ params, callerHostId }) => {
        const id = params['id'] ?? '';
        await requirePrimary(id, callerHostId);
        const { replicas, failovers } = deps();
        return { body: { deleted: await replicas.delete(id, failovers.deleteRefusal(id)) } };
      },
    },
    {
      method: 'POST',
      path: '/peer/v1/relationships/:id/reverse',
      handler: async ({ params, body, callerHostId }) => {
        const id = params['id'] ?? '';
        const caller = await requirePrimary(id, callerHostId);
        const b = parseBody(peerReverseBodySchema, body, 'reverse replication request');
        const f = deps().failovers.get(id);
        if (f.state !== 'failed-over') {
          throw new SecondsiteError(
            'SECONDSITE_ERR_INVALID_STATE',
            `cannot reverse ${id}: it is in state ${f.state} on this host; commit the failover first`,
            { relationshipId: id, state: f.state },
          );
        }
        const r = await deps().relationships.enable({
          relationshipId: id,
          vmId: f.vmId,
          diskIds: f.diskIds,
          replica: { hostId: caller, address: b.address, port: b.port, storageLocation: b.storageLocation },
          policy: b.policy,
          epoch: f.epoch,
          initialReplication: 'existing-copy',
        });
        return { body: r.view };
      },
    },
  ];
}

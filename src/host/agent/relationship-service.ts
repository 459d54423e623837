/**
 * Replication relationships on the primary host (docs/design/host-agent.md section 3).
 *
 * A relationship replicates one VM (a set of this host's disks) to one replica host with a policy. Its
 * definition is persisted in `<stateDir>/relationships/<id>.json` (atomic replace) before anything
 * runs, so a restart resumes every enabled relationship. Each enabled relationship has a runner: a
 * scheduler on the copy frequency whose cycle is "cut all the VM's disks at once, ship the snapshots,
 * the replica commits a point" (the sender completes or abandons the snapshots).
 *
 * Operations are idempotent: enabling again with the same settings is a no-op; with other settings it
 * is refused. Each refusal names the relationship's state and what to do.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Clock } from '../../domain/clock.js';
import { SecondsiteError, isSecondsiteError } from '../../domain/errors.js';
import {
  primaryProtectionState,
  type PersistedRelationshipState,
} from '../../domain/failover/primary-state.js';
import {
  protectionTransition,
  type ProtectionInput,
  type ProtectionState,
} from '../../domain/failover/protection.machine.js';
import { Rng } from '../../domain/random.js';
import {
  measureReplication,
  newRelationshipStats,
  type RelationshipStats,
  type ReplicationMeasure,
} from '../../domain/replication/relationship-stats.js';
import { buildReport, type ReplicationReport } from '../../domain/replication/replication-report.js';
import { parseResyncWindow, resyncHeldBack } from '../../domain/replication/resync-policy.js';
import type {
  EnableReplicationBody,
  ReplicationPolicy,
} from '../../protocol/host-api/relationships.schema.js';
import { cutCycle } from '../change-tracking/cycle-cut.js';
import { readWholeFile, replaceFileAtomically } from '../disks/atomic-file.js';
import type { Logger } from '../../observability/logger.js';
import type { TlsIdentity } from '../pki/tls-config.js';
import { ReplicationScheduler, abortableSleep } from '../replication/replication-scheduler.js';
import { ReplicationSender } from '../replication/replication-sender.js';
import type { Storage } from '../storage/storage.js';
import type { DiskService } from './disk-service.js';

/**
 * 'fenced': the replica refused this primary's epoch (a failover made the replica the VM's new home):
 * no cycles run and the VM may not start here until replication is resumed at the new epoch, reversed
 * or disabled (docs/design/failover.md section 6). The protection state shown to people is derived
 * from this and a few facts (primary-state.ts).
 */
export type RelationshipState = PersistedRelationshipState;

export interface RelationshipDefinition {
  readonly format: 'secondsite.relationship/1';
  readonly relationshipId: string;
  readonly vmId: string;
  readonly diskIds: readonly string[];
  readonly replica: {
    readonly hostId: string;
    readonly address: string;
    readonly port: number;
    readonly storageLocation: string;
  };
  readonly policy: ReplicationPolicy;
  readonly epoch: number;
  readonly state: RelationshipState;
  readonly createdWallMs: number;
  /** 'prepared' only: the final point shipped with the VM off (planned failover, zero loss). */
  readonly preparedPoint?: { readonly pointId: string; readonly cutWallMs: number };
  /** Scheduled initial replication: no cycle before this instant. */
  readonly startAtWallMs?: number;
  /** When the first point committed at the replica (the initial replication is done). */
  readonly initialDoneWallMs?: number;
  /** An operator asked for a resync: it runs even if the policy would hold it back; cleared after it. */
  readonly resyncRequested?: boolean;
}

export interface RelationshipView {
  definition: RelationshipDefinition;
  /** Hyper-V Replica's words: initial-replication, replicating, resync-required, paused ... */
  protectionState: ProtectionState;
  /** Why the relationship waits, when it does (scheduled start, a resync held back by the policy). */
  waitingFor: string | null;
  report: ReplicationReport;
}

interface Runner {
  sender: ReplicationSender;
  scheduler: ReplicationScheduler;
  /** Scheduled initial replication: the timer that starts the scheduler. */
  startTimer?: NodeJS.Timeout;
}

export class RelationshipService {
  private readonly defs = new Map<string, RelationshipDefinition>();
  private readonly stats = new Map<string, RelationshipStats>();
  private readonly runners = new Map<string, Runner>();
  /** Relationships whose resync the policy holds back, with the reason (in memory: re-derived each cycle). */
  private readonly heldResync = new Map<string, string>();
  private readonly dir: string;
  private cycleCounter = 0;

  constructor(
    private readonly storage: Storage,
    stateDir: string,
    private readonly disks: DiskService,
    private readonly identity: () => Promise<TlsIdentity>,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.dir = join(stateDir, 'relationships');
  }

  /** Loads every persisted relationship and starts the enabled ones. */
  async start(): Promise<void> {
    await this.storage.mkdir(this.dir);
    for (const name of await this.storage.list(this.dir)) {
      if (!name.endsWith('.json')) continue;
      const raw = await readWholeFile(this.storage, join(this.dir, name));
      if (!raw) continue;
      const def = JSON.parse(raw.toString('utf8')) as RelationshipDefinition;
      this.defs.set(def.relationshipId, def);
      this.stats.set(
        def.relationshipId,
        newRelationshipStats(def.relationshipId, def.policy.copyFrequencySeconds),
      );
      if (def.state === 'enabled') await this.startRunner(def);
    }
  }

  list(): RelationshipView[] {
    return [...this.defs.keys()].sort().map((id) => this.view(id));
  }

  get(relationshipId: string): RelationshipView {
    this.require(relationshipId);
    return this.view(relationshipId);
  }

  /** Disks of this host that belong to a relationship (a disk is in at most one). */
  relationshipOfDisk(diskId: string): string | undefined {
    for (const d of this.defs.values()) if (d.diskIds.includes(diskId)) return d.relationshipId;
    return undefined;
  }

  async enable(body: EnableReplicationBody): Promise<{ view: RelationshipView; created: boolean }> {
    const relationshipId = body.relationshipId ?? body.vmId;
    const existing = this.defs.get(relationshipId);
    const wanted = {
      vmId: body.vmId,
      diskIds: [...body.diskIds],
      replica: body.replica,
      policy: body.policy,
    };
    if (existing) {
      const same =
        JSON.stringify({
          vmId: existing.vmId,
          diskIds: existing.diskIds,
          replica: existing.replica,
          policy: existing.policy,
        }) === JSON.stringify(wanted);
      if (!same) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_ALREADY_EXISTS',
          `replication of '${relationshipId}' is already enabled with other settings; disable it first to change them`,
          { relationshipId },
        );
      }
      return { view: this.view(relationshipId), created: false };
    }
    if (new Set(body.diskIds).size !== body.diskIds.length) {
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'a disk is listed twice', {
        diskIds: body.diskIds,
      });
    }
    for (const diskId of body.diskIds) {
      this.disks.tracked(diskId); // throws NOT_FOUND for an unknown disk
      const other = this.relationshipOfDisk(diskId);
      if (other) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          `disk '${diskId}' already replicates in relationship '${other}'; a disk belongs to one relationship`,
          { diskId, relationshipId: other },
        );
      }
    }
    await this.identity(); // refuse early, with the fix, when this host has no certificate
    const startAtWallMs =
      body.initialReplicationStartAt === undefined ? undefined : Date.parse(body.initialReplicationStartAt);
    const scheduled = startAtWallMs !== undefined && startAtWallMs > this.clock.wallMs();
    protectionTransition(body.vmId, 'not-protected', scheduled ? 'enable-scheduled' : 'enable');
    const def: RelationshipDefinition = {
      format: 'secondsite.relationship/1',
      relationshipId,
      ...wanted,
      // The first generation is epoch 0 on both sides (a new replica store starts there); failover raises
      // it, and reverse replication starts at the failover's epoch (the replica's seeded store has it).
      epoch: body.epoch,
      state: 'enabled',
      createdWallMs: this.clock.wallMs(),
      ...(scheduled ? { startAtWallMs } : {}),
    };
    // the replica already holds a copy: the first cycle compares digests instead of copying
    if (body.initialReplication === 'existing-copy')
      for (const diskId of def.diskIds) await this.disks.tracked(diskId).requireResync();
    await this.persist(def);
    this.stats.set(relationshipId, newRelationshipStats(relationshipId, def.policy.copyFrequencySeconds));
    await this.startRunner(def);
    this.log.info('replication enabled', {
      relationshipId,
      diskIds: def.diskIds,
      replica: def.replica.hostId,
      ...(scheduled ? { initialReplicationStartAt: new Date(startAtWallMs).toISOString() } : {}),
    });
    return { view: this.view(relationshipId), created: true };
  }

  /** The VM's definition without disks as JSON, sent to the replica in HELLO (set by the agent). */
  vmConfigOf: (vmId: string) => string = () => '';

  /** The relationships of a VM that a failover fenced or prepared (their VM must not start here). */
  fencedOf(vmId: string): RelationshipDefinition[] {
    return [...this.defs.values()].filter(
      (d) => d.vmId === vmId && (d.state === 'fenced' || d.state === 'prepared'),
    );
  }

  /**
   * Planned failover, primary side (the VM must be off): stops the scheduled cycles, ships one last
   * cycle and waits for its point, and records it; the VM may not start here until replication is
   * resumed (cancel) or the replica took over. Idempotent: prepared again returns the same point.
   */
  async prepareFailover(
    relationshipId: string,
  ): Promise<RelationshipView & { finalPoint: { pointId: string; cutWallMs: number } }> {
    const def = this.require(relationshipId);
    if (def.state === 'prepared' && def.preparedPoint)
      return { ...this.view(relationshipId), finalPoint: def.preparedPoint };
    this.check(relationshipId, 'planned-failover');
    await this.stopRunner(relationshipId);
    const stats =
      this.stats.get(relationshipId) ?? newRelationshipStats(relationshipId, def.policy.copyFrequencySeconds);
    this.stats.set(relationshipId, stats);
    if (stats.state === 'stopped') stats.state = 'idle';
    const sender = await this.newSender(def, stats);
    let finalPoint: { pointId: string; cutWallMs: number };
    try {
      finalPoint = await this.shipOnce(def, sender);
    } catch (e) {
      // nothing changed: the relationship goes on as it was
      if (def.state === 'enabled') await this.startRunner(def);
      throw e;
    } finally {
      sender.disconnect();
    }
    await this.persist({ ...def, state: 'prepared', preparedPoint: finalPoint });
    this.log.info('prepared for planned failover', { relationshipId, pointId: finalPoint.pointId });
    return { ...this.view(relationshipId), finalPoint };
  }

  /**
   * The replica took the VM over (planned failover completed there, or the operator seeds this host's
   * disks as the reverse replica): the relationship stays, fenced, until it is disabled or resumed.
   */
  async failedOverAway(relationshipId: string): Promise<RelationshipView> {
    const def = this.require(relationshipId);
    if (def.state === 'fenced') return this.view(relationshipId);
    this.check(relationshipId, 'fenced');
    await this.stopRunner(relationshipId);
    await this.persist({ ...def, state: 'fenced' });
    this.log.info('the replica runs this VM now: replication fenced', { relationshipId });
    return this.view(relationshipId);
  }

  /** Fences the relationship if it is still enabled at the epoch the replica refused. */
  private async fence(relationshipId: string, refusedEpoch: number): Promise<void> {
    const def = this.defs.get(relationshipId);
    if (!def || def.state !== 'enabled' || def.epoch !== refusedEpoch) return;
    await this.stopRunner(relationshipId);
    await this.persist({ ...def, state: 'fenced' });
    this.log.warn('replication fenced: the replica runs this VM after a failover', {
      relationshipId,
      epoch: def.epoch,
    });
  }

  async pause(relationshipId: string): Promise<RelationshipView> {
    const def = this.require(relationshipId);
    if (def.state === 'paused') return this.view(relationshipId);
    this.check(relationshipId, 'pause');
    await this.stopRunner(relationshipId);
    await this.persist({ ...def, state: 'paused' });
    this.log.info('replication paused', { relationshipId });
    return this.view(relationshipId);
  }

  /**
   * Resumes a paused relationship. With `epoch` (after the replica cancelled a failover and kept its
   * raised epoch), the relationship moves to that generation first; an epoch can never go down.
   */
  async resume(
    relationshipId: string,
    options: { epoch?: number | undefined } = {},
  ): Promise<RelationshipView> {
    const def = this.require(relationshipId);
    const epoch = options.epoch ?? def.epoch;
    if (epoch < def.epoch) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `relationship ${relationshipId} is at epoch ${def.epoch}; an epoch never goes down (asked ${epoch})`,
        { relationshipId, epoch: def.epoch, requested: epoch },
      );
    }
    if (def.state === 'enabled' && epoch === def.epoch) return this.view(relationshipId);
    if (def.state !== 'enabled') {
      // a fenced primary resumes only at the raised epoch of a replica that cancelled its failover
      const input: ProtectionInput =
        def.state === 'prepared'
          ? 'cancel'
          : def.state === 'fenced' && epoch > def.epoch
            ? 'cancelled-by-replica'
            : 'resume';
      this.check(relationshipId, input);
    }
    await this.stopRunner(relationshipId);
    const { preparedPoint: _dropped, ...rest } = def;
    const next: RelationshipDefinition = { ...rest, state: 'enabled', epoch };
    await this.persist(next);
    await this.startRunner(next);
    this.log.info('replication resumed', { relationshipId, epoch });
    return this.view(relationshipId);
  }

  /** Stops replicating and forgets the relationship on this host (the replica keeps its points). */
  async disable(relationshipId: string): Promise<boolean> {
    if (!this.defs.has(relationshipId)) return false;
    this.check(relationshipId, 'disable');
    await this.stopRunner(relationshipId);
    await this.storage.unlink(this.file(relationshipId));
    await this.storage.syncDir(this.dir);
    this.defs.delete(relationshipId);
    this.stats.delete(relationshipId);
    this.log.info('replication disabled', { relationshipId });
    return true;
  }

  async close(): Promise<void> {
    for (const id of [...this.runners.keys()]) await this.stopRunner(id);
  }

  private view(relationshipId: string): RelationshipView {
    const definition = this.require(relationshipId);
    const stats =
      this.stats.get(relationshipId) ??
      newRelationshipStats(relationshipId, definition.policy.copyFrequencySeconds);
    const now = this.clock.wallMs();
    const report = buildReport(stats, now);
    if (definition.state !== 'enabled') report.state = 'stopped';
    const protectionState = this.protectionStateOf(definition);
    const held = this.heldResync.get(relationshipId) ?? null;
    const waitingFor =
      protectionState === 'ready-for-initial-replication' && definition.startAtWallMs !== undefined
        ? `scheduled initial replication at ${new Date(definition.startAtWallMs).toISOString()}`
        : protectionState === 'resync-required'
          ? held
          : null;
    return { definition, protectionState, waitingFor, report };
  }

  private protectionStateOf(def: RelationshipDefinition): ProtectionState {
    return primaryProtectionState(
      {
        state: def.state,
        initialDoneWallMs: def.initialDoneWallMs,
        startAtWallMs: def.startAtWallMs,
        resyncHeldBack: this.heldResync.has(def.relationshipId),
      },
      this.clock.wallMs(),
    );
  }

  /** Asks the protection machine; a refusal names the state and what to do. */
  private check(relationshipId: string, input: ProtectionInput): void {
    protectionTransition(relationshipId, this.protectionStateOf(this.require(relationshipId)), input);
  }

  private require(relationshipId: string): RelationshipDefinition {
    const def = this.defs.get(relationshipId);
    if (!def) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `no replication relationship '${relationshipId}' on this host; list them with 'secondsite host replication list'`,
        { relationshipId },
      );
    }
    return def;
  }

  private file(relationshipId: string): string {
    return join(this.dir, `${relationshipId}.json`);
  }

  private async persist(def: RelationshipDefinition): Promise<void> {
    await replaceFileAtomically(
      this.storage,
      this.file(def.relationshipId),
      Buffer.from(`${JSON.stringify(def, null, 2)}\n`),
    );
    this.defs.set(def.relationshipId, def);
  }

  private async startRunner(def: RelationshipDefinition): Promise<void> {
    if (this.runners.has(def.relationshipId)) return;
    const stats =
      this.stats.get(def.relationshipId) ??
      newRelationshipStats(def.relationshipId, def.policy.copyFrequencySeconds);
    this.stats.set(def.relationshipId, stats);
    // A new sender starts idle; the counters carry over (a pause or restart keeps the history), the
    // "stopped by the operator" state and its error do not.
    if (stats.state === 'stopped') {
      stats.state = 'idle';
      stats.lastError = null;
    }
    const log = this.log.child({ relationshipId: def.relationshipId });
    const sender = await this.newSender(def, stats);
    const scheduler = new ReplicationScheduler({
      clock: this.clock,
      sleep: abortableSleep,
      copyFrequencySeconds: def.policy.copyFrequencySeconds,
      stats,
      runCycle: async () => {
        const held = this.resyncHeldBackReason(def.relationshipId);
        if (held !== null) {
          if (!this.heldResync.has(def.relationshipId))
            log.warn('resync held back by the policy', { reason: held });
          this.heldResync.set(def.relationshipId, held);
          stats.resyncRequired = true;
          return 'held';
        }
        this.heldResync.delete(def.relationshipId);
        try {
          await this.shipOnce(def, sender);
          await this.afterCycle(def.relationshipId);
        } catch (e) {
          log.warn('replication cycle failed', { error: e });
          if (isSecondsiteError(e, 'SECONDSITE_ERR_STALE_EPOCH')) {
            // stop trying: the next step is the operator's (after this cycle unwinds)
            setImmediate(() => void this.fence(def.relationshipId, def.epoch).catch(() => undefined));
          }
          throw e;
        }
      },
    });
    const runner: Runner = { sender, scheduler };
    this.runners.set(def.relationshipId, runner);
    const delayMs =
      def.initialDoneWallMs === undefined && def.startAtWallMs !== undefined
        ? def.startAtWallMs - this.clock.wallMs()
        : 0;
    if (delayMs <= 0) {
      scheduler.start();
      return;
    }
    log.info('initial replication scheduled', {
      startAt: new Date(def.startAtWallMs ?? 0).toISOString(),
    });
    // setTimeout holds at most ~24.8 days; a later start re-arms (the relationship's state says why it waits)
    const arm = (ms: number): void => {
      runner.startTimer = setTimeout(
        () => {
          const left = (def.startAtWallMs ?? 0) - this.clock.wallMs();
          if (left > 0) return arm(left);
          delete runner.startTimer;
          scheduler.start();
        },
        Math.min(ms, 2 ** 31 - 1),
      );
    };
    arm(delayMs);
  }

  /**
   * Why this relationship's next cycle must wait, or null: a resync change tracking needs (unclean
   * stop, unreadable state, failed flush) that the policy holds back. The initial replication and a
   * resync an operator asked for never wait.
   */
  private resyncHeldBackReason(relationshipId: string): string | null {
    const def = this.defs.get(relationshipId);
    if (!def || def.initialDoneWallMs === undefined) return null;
    const needed = def.diskIds.some((diskId) => {
      const reason = this.trackedOrUndefined(diskId)?.resyncReason;
      return reason !== undefined && reason !== 'requested' && reason !== 'first-enable';
    });
    if (!needed) return null;
    return resyncHeldBack({
      mode: def.policy.resyncMode,
      window: def.policy.resyncWindow === undefined ? undefined : parseResyncWindow(def.policy.resyncWindow),
      requestedByOperator: def.resyncRequested === true,
      wallMs: this.clock.wallMs(),
    });
  }

  private trackedOrUndefined(diskId: string): ReturnType<DiskService['tracked']> | undefined {
    try {
      return this.disks.tracked(diskId);
    } catch {
      return undefined; // a disk that is not served: the cycle itself reports it
    }
  }

  /** Records the facts a committed point establishes: the initial replication is done, a resync ran. */
  private async afterCycle(relationshipId: string): Promise<void> {
    const def = this.defs.get(relationshipId);
    if (!def || def.state !== 'enabled') return;
    if (def.initialDoneWallMs !== undefined && !def.resyncRequested) return;
    const { resyncRequested: _done, ...rest } = def;
    await this.persist({ ...rest, initialDoneWallMs: def.initialDoneWallMs ?? this.clock.wallMs() });
  }

  private async newSender(def: RelationshipDefinition, stats: RelationshipStats): Promise<ReplicationSender> {
    return new ReplicationSender({
      tls: await this.identity(),
      replica: { host: def.replica.address, port: def.replica.port, hostId: def.replica.hostId },
      relationship: {
        relationshipId: def.relationshipId,
        epoch: def.epoch,
        storageLocation: def.replica.storageLocation,
        retentionHours: def.policy.retentionHours,
        vmConfig: () => this.vmConfigOf(def.vmId),
      },
      policy: {
        compression: def.policy.compression,
        bandwidthBytesPerSec: def.policy.bandwidthLimitBytesPerSec,
        chunkBytes: def.policy.chunkBytes,
      },
      clock: this.clock,
      rng: new Rng(randomBytes(4).readUInt32LE(0)),
      stats,
    });
  }

  /**
   * Quiesces a VM for an app-consistent cut and returns its thaw, or throws (timeout, VM not running):
   * then the cut is crash-consistent. Set by the agent (the VM service).
   */
  quiesceVm: (vmId: string) => Promise<() => Promise<void>> = () =>
    Promise.reject(new SecondsiteError('SECONDSITE_ERR_NOT_FOUND', 'no VM runtime on this host'));

  /** Wall-clock time of the last app-consistent cut per relationship (in memory: a restart takes one soon). */
  private readonly lastAppConsistentMs = new Map<string, number>();

  /** `Measure-VMReplication`: cycle sizes and latencies, errors, and the changes not yet shipped. */
  measure(relationshipId: string): ReplicationMeasure {
    const def = this.require(relationshipId);
    const stats =
      this.stats.get(relationshipId) ?? newRelationshipStats(relationshipId, def.policy.copyFrequencySeconds);
    let pendingBytes = 0;
    for (const diskId of def.diskIds) {
      const t = this.trackedOrUndefined(diskId); // a disk that is not served has nothing pending here
      if (!t) continue;
      const s = t.stats();
      // a block dirty in both bitmaps counts twice: an upper bound
      pendingBytes += (s.activeBlocks + s.shippingBlocks) * t.trackingBlockBytes;
    }
    return measureReplication(stats, pendingBytes);
  }

  /**
   * Resync / online verify: the next cycle compares the digest of every chunk of every disk with the
   * replica's latest point and sends only the chunks that differ (then replication goes on as before).
   * Finds and repairs silent divergence, e.g. corruption on the replica.
   */
  async resync(relationshipId: string): Promise<RelationshipView> {
    const def = this.require(relationshipId);
    this.check(relationshipId, 'resync');
    // persisted first: a resync asked for runs even where the policy would hold it back (window, manual)
    if (!def.resyncRequested) await this.persist({ ...def, resyncRequested: true });
    for (const diskId of def.diskIds) await this.disks.tracked(diskId).requireResync();
    this.heldResync.delete(relationshipId);
    this.log.info('resync requested: the next cycle compares every chunk', { relationshipId });
    return this.view(relationshipId);
  }

  /** One cycle now: cut every disk of the VM together and ship it; returns the committed point. */
  private async shipOnce(
    def: RelationshipDefinition,
    sender: ReplicationSender,
  ): Promise<{ pointId: string; cutWallMs: number }> {
    const period = def.policy.appConsistentFrequencySeconds * 1000;
    let thaw: (() => Promise<void>) | null = null;
    if (
      period > 0 &&
      this.clock.wallMs() - (this.lastAppConsistentMs.get(def.relationshipId) ?? 0) >= period
    ) {
      try {
        thaw = await this.quiesceVm(def.vmId);
      } catch (e) {
        // a guest that does not answer in time gives a crash-consistent point and a warning, never a stuck VM
        this.log.warn('the VM could not be quiesced; this point is crash-consistent', {
          relationshipId: def.relationshipId,
          vmId: def.vmId,
          error: e,
        });
        this.lastAppConsistentMs.set(def.relationshipId, this.clock.wallMs());
      }
    }
    // Read the time before the cut: every flush acknowledged before this instant covers writes that
    // are inside the cut, so a checker may require them (docs/design/host-agent.md).
    const cutWallMs = this.clock.wallMs();
    let snapshots;
    try {
      // Look the disks up at every cut: a resize reopens a disk's device (and its filter).
      snapshots = await cutCycle(def.diskIds.map((id) => this.disks.tracked(id)));
    } finally {
      // the cut is instantaneous (copy-on-write): the guest is frozen only around it
      if (thaw)
        await thaw().catch((e: unknown) =>
          this.log.warn('thaw failed (the guest thaws itself)', { error: e }),
        );
    }
    const consistency = thaw ? 'app-consistent' : 'crash-consistent';
    if (thaw) this.lastAppConsistentMs.set(def.relationshipId, cutWallMs);
    const cycleId = `${cutWallMs.toString(36)}-${(++this.cycleCounter).toString(36)}-${randomBytes(4).toString('hex')}`;
    const r = await sender.shipCycle({ cycleId, cutWallMs, consistency, snapshots });
    this.log.info('recovery point committed', {
      relationshipId: def.relationshipId,
      pointId: r.point.pointId,
      consistency,
      chunksEqualByDigest: r.chunksSkippedByDigest,
      logicalBytes: r.logicalBytesSent,
      wireBytes: r.wireBytesSent,
      attempts: r.attempts,
    });
    return { pointId: r.point.pointId, cutWallMs };
  }

  private async stopRunner(relationshipId: string): Promise<void> {
    const runner = this.runners.get(relationshipId);
    if (!runner) return;
    this.runners.delete(relationshipId);
    if (runner.startTimer) clearTimeout(runner.startTimer);
    runner.sender.stop();
    await runner.scheduler.stop();
  }
}

/**
 * The recovery-point store of one relationship on the replica host (ReplicaStore). Design, invariants,
 * commit phases and their failure cases: docs/design/recovery-points.md. In short: per disk a sparse
 * base holding the latest point; per older point an undo file; a cycle is staged in a redo log and
 * committed in five phases (sync redo; capture undo + intent; apply; publish catalogue; clean) so that
 * after a crash `open()` shows the old set of points or the new one, never a partly applied cycle.
 * A store's first cycle is staged in place (straight into the bases, section 4.1): nothing reads a
 * base before the first point exists, so the commit has nothing to copy.
 */
import { SecondsiteError } from '../../domain/errors.js';
import { coalesce } from '../../domain/replication/extent-set.js';
import type { Clock } from '../../domain/clock.js';
import { planRetention } from '../../domain/retention/retention.policy.js';
import { nextUndoMerge } from '../../domain/retention/undo-compaction.js';
import type { Storage, StorageFile } from '../storage/storage.js';
import { AsyncMutex, ReadWriteLock } from './async-lock.js';
import {
  checkCatalogue,
  dropPoints,
  emptyCatalogue,
  undoFilesOf,
  type CatalogueBody,
  type StoredPoint,
  type UndoRef,
} from './catalogue.js';
import { CycleStaging, type StagingHost } from './cycle-staging.js';
import { gapsOf, type Extent, type SourceRef } from './extent-map.js';
import type { RedoEntry } from './redo-log.js';
import { readMetadataFile, writeMetadataFile } from './metadata-file.js';
import { PointDiskView, type PointResolver } from './point-disk-view.js';
import { rewriteBases, type PromotionIntent } from './point-promotion.js';
import { finishSeeding } from './point-seeding.js';
import { adoptable, buildRedoMap, encodeRedoRecord, scanRedoLog } from './redo-log.js';
import type { BeginCycleOptions, CycleWriter, RecoveryPointInfo, ReplicaStore } from './replica-store.js';
import { checkPlainName, StoreLayout } from './store-layout.js';
import { TestView } from './test-view.js';
import {
  applyRedo,
  captureUndo,
  planUndoMerge,
  shadowedData,
  uncoveredBy,
  writeMergedUndo,
  type RedoMap,
} from './undo-redo-copy.js';
import { loadUndo, readFully, type LoadedUndo } from './undo-file.js';

export interface PointStoreOptions {
  readonly storage: Storage;
  /** The replica's storage location; the relationship lives in `<storageDir>/<relationshipId>/`. */
  readonly storageDir: string;
  readonly relationshipId: string;
  readonly clock: Clock;
  /**
   * When undo lists are compacted (recovery-points.md section 6.1): in the background after retention
   * and at open (default), or only when `compactUndo()` is called (tests that count storage calls).
   */
  readonly compaction?: 'background' | 'manual';
  /** Receives errors of background compaction (the store stays usable; the step is retried later). */
  readonly onBackgroundError?: (error: unknown) => void;
}

/** The intent record of commit phase 2 (staging/intent.meta). */
interface IntentBody {
  readonly format: 'secondsite-intent-1';
  readonly cycleId: string;
  readonly epoch: number;
  readonly redoBytes: number;
  readonly redoRecords: number;
  /** Undo file for the point that was latest before this cycle; null for the first cycle. */
  readonly undoFile: string | null;
  readonly point: StoredPoint;
  readonly nextFileId: number;
  /** Points the retention planned at commit drops in the same publish (section 6.2); absent: none. */
  readonly drop?: readonly string[];
}

/** Kept points whose undo lists grew by a drop, and where the joined files start. */
type Joined = ReadonlyArray<{ readonly pointId: string; readonly from: number }>;

/** Undo files of a store's retained points, its longest list, and background errors since open. */
export interface UndoStats {
  readonly files: number;
  readonly longestList: number;
  readonly backgroundErrors: number;
}

export class PointStore implements ReplicaStore, StagingHost, PointResolver {
  private cat: CatalogueBody;
  private readonly bases = new Map<string, StorageFile>();
  private readonly undos = new Map<string, LoadedUndo>();
  private staging: CycleStaging | null = null;
  /** Open views per point (in this process) plus persisted test views (across restarts). */
  private readonly pins = new Map<string, number>();
  private readonly mutex = new AsyncMutex();
  private readonly chainLock = new ReadWriteLock();
  private storeState: 'open' | 'failed' | 'closed' = 'open';
  private failure: unknown = null;
  /** A base sync of an in-place staging failed in this process: never resume or adopt that log. */
  private inPlaceUntrusted = false;
  /** Next undo file id; ahead of the catalogue's while a compaction's file is being written. */
  private nextFileId: number;
  /** Undo files a compaction step reads or writes: never closed or deleted under it. */
  private readonly busyUndo = new Set<string>();
  private compactionRun: Promise<void> | null = null;
  private compactionWanted = false;
  private compactionStopped = false;
  private backgroundErrors = 0;
  /** Points a catalogue change in progress drops: opening a view of one waits for it (section 6.2). */
  private readonly closing = new Map<string, Promise<void>>();

  private constructor(
    private readonly storage: Storage,
    readonly layout: StoreLayout,
    readonly relationshipId: string,
    private readonly clock: Clock,
    cat: CatalogueBody,
    private readonly options: Pick<PointStoreOptions, 'compaction' | 'onBackgroundError'>,
  ) {
    this.cat = cat;
    this.nextFileId = cat.nextFileId;
  }

  /** Opens (creating if needed) a relationship's store and finishes or discards an interrupted commit. */
  static async open(options: PointStoreOptions): Promise<PointStore> {
    const layout = new StoreLayout(`${options.storageDir}/${options.relationshipId}`);
    checkPlainName('relationship id', options.relationshipId);
    if (await options.storage.exists(layout.promote)) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `the recovery-point store of ${options.relationshipId} is being promoted to disks (a failover commit); finish the commit first`,
        { relationshipId: options.relationshipId },
      );
    }
    await finishSeeding(options.storage, options.storageDir, options.relationshipId);
    const store = await PointStore.openDir(options, layout);
    // lists left uncompacted by a restart
    store.scheduleCompaction();
    return store;
  }

  /**
   * Finishes a promotion (failover commit) interrupted by a crash: rewrites the bases again, renames
   * them to their targets and removes the store. Returns the intent, or null when none was pending.
   */
  static async finishPromotion(options: PointStoreOptions): Promise<PromotionIntent | null> {
    const layout = new StoreLayout(`${options.storageDir}/${options.relationshipId}`);
    checkPlainName('relationship id', options.relationshipId);
    const { storage } = options;
    const gone = `${layout.dir}.promoted`;
    if (!(await storage.exists(layout.promote))) {
      if (await storage.exists(gone)) await storage.removeTree(gone);
      return null;
    }
    const intent = (await readMetadataFile(storage, layout.promote)) as PromotionIntent | null;
    if (intent === null || intent.format !== 'secondsite-promote-1') {
      throw new SecondsiteError(
        'SECONDSITE_ERR_METADATA_CORRUPT',
        `promotion intent ${layout.promote} is unreadable`,
        {
          file: layout.promote,
        },
      );
    }
    let rewritten = false;
    for (const diskId of Object.keys(intent.targets))
      if (!(await storage.exists(layout.base(diskId)))) rewritten = true;
    if (rewritten) {
      // renames only start once every base is rewritten: finish them
      await renameAndRemove(storage, layout, intent);
      return intent;
    }
    const store = await PointStore.openDir(options, layout);
    await store.mutate(() => store.promote(intent));
    return intent;
  }

  private static async openDir(options: PointStoreOptions, layout: StoreLayout): Promise<PointStore> {
    const { storage } = options;
    for (const dir of [layout.dir, layout.disksDir, layout.undoDir, layout.stagingDir, layout.viewsDir]) {
      await storage.mkdir(dir);
    }
    // A new directory's name is durable only once its parent is synced.
    await storage.syncDir(options.storageDir);
    await storage.syncDir(layout.dir);
    for (const dir of [layout.dir, layout.stagingDir]) {
      for (const name of await storage.list(dir))
        if (name.endsWith('.tmp')) await storage.unlink(`${dir}/${name}`);
    }
    const body = await readMetadataFile(storage, layout.catalogue);
    let cat: CatalogueBody;
    if (body === null) {
      cat = emptyCatalogue(options.relationshipId);
      await writeMetadataFile(storage, layout.catalogue, cat);
    } else {
      cat = checkCatalogue(body, options.relationshipId, layout.catalogue);
    }
    const store = new PointStore(storage, layout, options.relationshipId, options.clock, cat, options);
    try {
      await store.recover();
    } catch (e) {
      await store.closeFiles();
      throw e;
    }
    return store;
  }

  /**
   * 'failed' after an error in the middle of a commit or a catalogue write: every call then answers
   * SECONDSITE_ERR_INVALID_STATE; close the store and open it again to recover.
   */
  get state(): 'open' | 'failed' | 'closed' {
    return this.storeState;
  }

  // ---- ReplicaStore: metadata ----

  epoch(): number {
    return this.cat.epoch;
  }

  setEpoch(epoch: number): Promise<void> {
    return this.mutate(async () => {
      if (!Number.isSafeInteger(epoch) || epoch < 0) {
        throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `epoch ${epoch} is not a whole number`, {
          epoch,
        });
      }
      if (epoch < this.cat.epoch) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_STALE_EPOCH',
          `epoch ${epoch} is older than the relationship's epoch ${this.cat.epoch}; the epoch never goes back`,
          { epoch, current: this.cat.epoch },
        );
      }
      if (epoch === this.cat.epoch) return;
      await this.publish({ ...this.cat, epoch });
    });
  }

  disks(): ReadonlyArray<{ diskId: string; sizeBytes: number }> {
    return this.cat.disks;
  }

  ensureDisk(diskId: string, sizeBytes: number): Promise<void> {
    return this.mutate(async () => {
      checkPlainName('disk id', diskId);
      if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
        throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `disk size ${sizeBytes} is not valid`, {
          diskId,
          sizeBytes,
        });
      }
      const current = this.cat.disks.find((d) => d.diskId === diskId);
      if (current !== undefined && current.sizeBytes === sizeBytes) return;
      if (current !== undefined && sizeBytes < current.sizeBytes) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `disk ${diskId} cannot shrink from ${current.sizeBytes} to ${sizeBytes} bytes: older points need the data`,
          { diskId, sizeBytes, currentSizeBytes: current.sizeBytes },
        );
      }
      let base = this.bases.get(diskId);
      if (base === undefined) {
        base = await this.storage.open(this.layout.base(diskId), 'create');
        this.bases.set(diskId, base);
        await this.storage.syncDir(this.layout.disksDir);
      }
      await base.truncate(sizeBytes);
      await base.datasync();
      const disks = this.cat.disks.filter((d) => d.diskId !== diskId).concat([{ diskId, sizeBytes }]);
      await this.publish({ ...this.cat, disks });
    });
  }

  points(): ReadonlyArray<RecoveryPointInfo> {
    return this.cat.points.map(toInfo);
  }

  /** Point ids that retention must keep now (open views, persisted test views). */
  pinnedPointIds(): ReadonlySet<string> {
    return new Set([...this.pins].filter(([, n]) => n > 0).map(([id]) => id));
  }

  // ---- Staging and commit ----

  beginCycle(cycleId: string, epoch: number, options: BeginCycleOptions = {}): Promise<CycleWriter> {
    return this.mutate(async () => {
      if (typeof cycleId !== 'string' || cycleId.length === 0 || cycleId.length > 256) {
        throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'cycleId must be 1 to 256 characters', {
          cycleId,
        });
      }
      this.checkEpochCurrent(epoch, cycleId);
      // A staging of this process that never failed knows the durable prefix of its log exactly: a
      // cycle that resumes or adopts it takes it from memory (the log is cut after the last synced
      // record) instead of reading and hashing the whole log again (up to 6.8 s for 900 MB measured).
      // After a restart, or once the writer broke, the scan decides.
      const known = this.staging?.durablePrefix() ?? null;
      if (this.staging !== null) {
        await this.staging.close();
        this.staging = null;
      }
      const path = this.layout.redo;
      // A store without a point stages its first cycle in place (recovery-points.md section 4.1).
      const firstCycle = this.cat.points.length === 0;
      if (await this.storage.exists(path)) {
        const file = await this.storage.open(path, 'readwrite');
        const scan = known ?? (await scanRedoLog(file));
        // an in-place log is usable only while the store has no point (IP1) and its bases are trusted
        const usable = !scan.inPlace || (firstCycle && !this.inPlaceUntrusted);
        if (usable && scan.head !== null && scan.head.cycleId === cycleId && scan.head.epoch === epoch) {
          await file.truncate(scan.validBytes);
          await file.datasync();
          if (scan.inPlace) await this.zeroBasesOutside(scan.entries);
          this.staging = new CycleStaging(this, file, cycleId, epoch, scan);
          return this.staging;
        }
        if (
          usable &&
          scan.head !== null &&
          scan.head.epoch === epoch &&
          adoptable(scan.entries, options.adoptWithin)
        ) {
          // keep the earlier cycle's records (adopted) and re-head the log to this cycle
          await file.truncate(scan.validBytes);
          const head = encodeRedoRecord({
            k: 'head',
            cycleId,
            epoch,
            ...(scan.inPlace ? { place: 'base' } : {}),
          });
          await file.write(head, 0, head.length, scan.validBytes);
          await file.datasync();
          if (scan.inPlace) await this.zeroBasesOutside(scan.entries);
          this.staging = new CycleStaging(this, file, cycleId, epoch, {
            entries: scan.entries,
            adoptedEntries: scan.entries.length,
            validBytes: scan.validBytes + head.length,
            records: scan.records + 1,
            inPlace: scan.inPlace,
          });
          return this.staging;
        }
        await file.close();
        await this.storage.unlink(path);
        // durable before the bases are reset below: no record of the old log may outlive the reset
        await this.storage.syncDir(this.layout.stagingDir);
      }
      if (firstCycle) await this.resetBases();
      this.inPlaceUntrusted = false;
      const file = await this.storage.open(path, 'create');
      await file.truncate(0);
      const head = encodeRedoRecord({ k: 'head', cycleId, epoch, ...(firstCycle ? { place: 'base' } : {}) });
      await file.write(head, 0, head.length, 0);
      await file.datasync();
      await this.storage.syncDir(this.layout.stagingDir);
      this.staging = new CycleStaging(this, file, cycleId, epoch, {
        entries: [],
        adoptedEntries: 0,
        validBytes: head.length,
        records: 1,
        inPlace: firstCycle,
      });
      return this.staging;
    });
  }

  diskSizeBytes(diskId: string): number | undefined {
    return this.cat.disks.find((d) => d.diskId === diskId)?.sizeBytes;
  }

  inPlaceSyncFailed(writer: CycleStaging): void {
    if (this.staging === writer) this.inPlaceUntrusted = true;
  }

  /** Before a first cycle is staged in place: every base becomes all holes (IP3). */
  private async resetBases(): Promise<void> {
    for (const d of this.cat.disks) {
      const base = this.baseFile(d.diskId);
      await base.truncate(0);
      await base.truncate(d.sizeBytes);
      await base.datasync();
    }
  }

  /** Resuming or adopting an in-place log: punch every base outside the recorded ranges (IP3). */
  private async zeroBasesOutside(entries: readonly RedoEntry[]): Promise<void> {
    for (const d of this.cat.disks) {
      const recorded = coalesce(
        entries
          .filter((e) => e.diskId === d.diskId)
          .map((e) => ({ offsetBytes: e.offsetBytes, lengthBytes: e.lengthBytes })),
      );
      const base = this.baseFile(d.diskId);
      for (const gap of gapsOf({ offsetBytes: 0, lengthBytes: d.sizeBytes }, recorded))
        await base.punchHole(gap.offsetBytes, gap.lengthBytes);
      await base.datasync();
    }
  }

  discardStaged(writer: CycleStaging): Promise<void> {
    return this.mutate(async () => {
      await writer.close();
      if (this.staging !== writer) return;
      this.staging = null;
      await this.storage.unlink(this.layout.redo);
      await this.storage.syncDir(this.layout.stagingDir);
    });
  }

  commitStaged(writer: CycleStaging, meta: Parameters<CycleWriter['commit']>[0]): Promise<RecoveryPointInfo> {
    return this.mutate(async () => {
      if (this.staging !== writer || !writer.isOpen) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          `cycle ${writer.cycleId} is no longer the open staging; begin the cycle again`,
          { cycleId: writer.cycleId },
        );
      }
      const twin = this.cat.points.find((p) => p.cycleId === writer.cycleId);
      if (twin !== undefined) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_ALREADY_EXISTS',
          `cycle ${writer.cycleId} is already committed as point ${twin.pointId}; acknowledge that point instead`,
          { cycleId: writer.cycleId, pointId: twin.pointId },
        );
      }
      // Phase 1: the staging is complete and durable; fencing checked again.
      await writer.sync();
      this.checkEpochCurrent(writer.epoch, writer.cycleId);
      const redo = buildRedoMap(writer.syncedEntries());
      for (const diskId of redo.keys()) {
        if (this.diskSizeBytes(diskId) === undefined) {
          throw new SecondsiteError(
            'SECONDSITE_ERR_NOT_FOUND',
            `disk ${diskId} is not part of this relationship`,
            {
              diskId,
            },
          );
        }
      }
      const sequence = this.cat.nextSequence;
      const diskSizes: Record<string, number> = {};
      for (const d of this.cat.disks) diskSizes[d.diskId] = d.sizeBytes;
      const point: StoredPoint = {
        pointId: `rp-${sequence}`,
        sequence,
        epoch: Math.max(writer.epoch, this.cat.epoch),
        cycleId: writer.cycleId,
        cutWallMs: meta.cutWallMs,
        committedWallMs: this.clock.wallMs(),
        consistency: meta.consistency,
        diskSizes,
        undo: [],
      };
      // Retention at commit (section 6.2): the points it drops are closing from now on.
      const drop =
        meta.retentionHours === undefined ? new Set<string>() : this.planDrop(point, meta.retentionHours);
      const release = this.markClosing(drop);
      try {
        // Phase 2: undo for the current latest point, durable before the intent that names it; of a
        // latest point the plan drops, only what the chain of the kept point before it lacks.
        const latest = this.cat.points[this.cat.points.length - 1];
        let undoFile: string | null = null;
        if (latest !== undefined) {
          // a kept point always gets its (maybe empty) undo file: its list may not be empty
          let capture: RedoMap | null = redo;
          if (drop.has(latest.pointId)) {
            const pred = [...this.cat.points].reverse().find((p) => p !== latest && !drop.has(p.pointId));
            const rest = pred === undefined ? null : uncoveredBy(redo, this.chainFor(pred.pointId));
            capture = rest !== null && [...rest.values()].some((m) => m.size > 0) ? rest : null;
          }
          if (capture !== null) {
            undoFile = `u-${latest.sequence}-${this.nextFileId++}.undo`;
            await this.captureUndo(undoFile, capture);
          }
        }
        const intent: IntentBody = {
          format: 'secondsite-intent-1',
          cycleId: writer.cycleId,
          epoch: writer.epoch,
          redoBytes: writer.syncedBytes,
          redoRecords: writer.recordsSynced,
          undoFile,
          point,
          nextFileId: this.nextFileId,
          ...(drop.size > 0 ? { drop: [...drop] } : {}),
        };
        // From the intent on, a failure leaves the store to be reopened: the intent may be durable (a
        // failed syncDir does not say it is not), so only open-time recovery may decide what happens.
        let joined: Joined = [];
        try {
          await writeMetadataFile(this.storage, this.layout.intent, intent);
          joined = await this.applyAndPublish(intent, writer.file, redo);
          await writer.close();
          this.staging = null;
          await this.cleanStaging();
          if (drop.size > 0) await this.dropUnreferencedUndo();
        } catch (e) {
          this.fail(e);
          throw e;
        }
        await this.afterDrop(joined);
      } finally {
        release();
      }
      return toInfo(point);
    });
  }

  /** The points of `points` the retention policy drops now (current pins). */
  private dropsOf(points: readonly StoredPoint[], retentionHours: number): Set<string> {
    const decisions = planRetention({ points, retentionHours, pinnedPointIds: this.pinnedPointIds() });
    return new Set(points.flatMap((p, i) => (decisions[i]?.keep === true ? [] : [p.pointId])));
  }

  /** The points retention would drop once `newPoint` is the latest; never `newPoint`. */
  private planDrop(newPoint: StoredPoint, retentionHours: number): Set<string> {
    const drop = this.dropsOf([...this.cat.points, newPoint], retentionHours);
    drop.delete(newPoint.pointId);
    return drop;
  }

  /**
   * Marks points as closing until the returned function runs: opening a view of one waits until then
   * and finds the point gone (or still there when the change failed early). Call it synchronously
   * with the plan that chose them, so that no pin arrives in between.
   */
  private markClosing(ids: ReadonlySet<string>): () => void {
    let release = (): void => undefined;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    const marked = [...ids].filter((id) => !this.closing.has(id));
    for (const id of marked) this.closing.set(id, done);
    return () => {
      for (const id of marked) this.closing.delete(id);
      release();
    };
  }

  /** After a publish that joined lists: punch their shadowed data (space only), schedule compaction. */
  private async afterDrop(joined: Joined): Promise<void> {
    if (joined.length === 0) return;
    try {
      for (const j of joined) {
        const list = this.findPoint(j.pointId).undo.map((u) => this.undoNamed(u.file));
        for (let i = j.from; i < list.length; i++)
          await this.punchShadowed(list[i] as LoadedUndo, list.slice(0, i));
      }
    } catch (e) {
      // a punch lost costs space, not data: the next merge of those files leaves the ranges out
      this.backgroundError(e);
    }
    this.scheduleCompaction();
  }

  // ---- Views ----

  async openPointDisk(pointId: string, diskId: string): Promise<PointDiskView> {
    this.checkUsable();
    // a point a catalogue change in progress drops: wait for it, then it is gone (or kept); no await
    // between the last check and the pin below (a commit could plan its drops in between)
    while (this.closing.has(pointId)) await this.closing.get(pointId);
    this.checkUsable();
    const point = this.findPoint(pointId);
    const sizeBytes = point.diskSizes[diskId];
    if (sizeBytes === undefined) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `disk ${diskId} is not part of point ${pointId}`,
        {
          pointId,
          diskId,
        },
      );
    }
    this.pin(pointId);
    return new PointDiskView(this, pointId, diskId, sizeBytes);
  }

  /**
   * Opens (or reopens after a restart) a copy-on-write test view of a point: writable disks whose
   * writes go to an overlay, never to the point. The point stays pinned until `discard()`.
   */
  async openTestView(pointId: string, viewId: string): Promise<TestView> {
    // no await between the last check and the pin (a commit could plan its drops in between)
    while (this.closing.has(pointId)) await this.closing.get(pointId);
    this.checkUsable();
    this.findPoint(pointId);
    // pinned from the call on: a commit queued before us on the store's mutex cannot drop the point
    this.pin(pointId);
    try {
      return await this.mutate(async () => {
        checkPlainName('view id', viewId);
        this.findPoint(pointId);
        const view = await TestView.open(this.storage, this.layout.viewDir(viewId), viewId, pointId, this);
        if (!this.viewPointIds.has(viewId)) {
          this.viewPointIds.set(viewId, pointId);
          this.pin(pointId);
        }
        return view;
      });
    } finally {
      this.unpin(pointId);
    }
  }

  /**
   * The retained point `pointId` (or the latest for "latest"), or undefined. "latest" is resolved again
   * once a catalogue change in progress that drops the current latest point has ended (section 6.2),
   * so callers that open the latest point get the one after it.
   */
  async resolvePoint(pointId: string): Promise<RecoveryPointInfo | undefined> {
    const find = (): RecoveryPointInfo | undefined => {
      const points = this.points();
      return pointId === 'latest' ? points.at(-1) : points.find((p) => p.pointId === pointId);
    };
    const first = find();
    if (first === undefined || pointId !== 'latest') return first;
    while (this.closing.has(first.pointId)) await this.closing.get(first.pointId);
    return find();
  }

  /** Persisted test views (viewId -> pointId); each pins its point. */
  private readonly viewPointIds = new Map<string, string>();

  /** Called by a test view when it is discarded. */
  async forgetView(viewId: string): Promise<void> {
    const pointId = this.viewPointIds.get(viewId);
    await this.storage.removeTree(this.layout.viewDir(viewId));
    await this.storage.syncDir(this.layout.viewsDir);
    if (pointId !== undefined) {
      this.viewPointIds.delete(viewId);
      this.unpin(pointId);
    }
  }

  /** The size of a disk at a retained point, undefined when the point has no such disk. */
  pointDiskSize(pointId: string, diskId: string): number | undefined {
    return this.findPoint(pointId).diskSizes[diskId];
  }

  /** Test views present on disk, with their points. */
  testViews(): ReadonlyMap<string, string> {
    return this.viewPointIds;
  }

  /**
   * Turns view `viewId` (its point plus its own writes) into plain disk images at `targets` (per disk
   * id, absolute paths on the same file system), in place, and removes the store: every other point is
   * gone afterwards (docs/design/failover.md section 5). The view's disks must be closed. Crash-safe:
   * once the intent is written, `finishPromotion` completes it; before, nothing changed.
   */
  async promoteView(viewId: string, targets: Readonly<Record<string, string>>): Promise<PromotionIntent> {
    await this.stopCompaction();
    try {
      return await this.promoteViewNow(viewId, targets);
    } finally {
      if (this.storeState === 'open') {
        this.compactionStopped = false;
        this.scheduleCompaction();
      }
    }
  }

  private promoteViewNow(
    viewId: string,
    targets: Readonly<Record<string, string>>,
  ): Promise<PromotionIntent> {
    return this.mutate(async () => {
      const pointId = this.viewPointIds.get(viewId);
      if (pointId === undefined) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_NOT_FOUND',
          `no view ${viewId} in the store of ${this.relationshipId}`,
          {
            viewId,
          },
        );
      }
      const point = this.findPoint(pointId);
      const diskSizes: Record<string, number> = {};
      for (const diskId of Object.keys(targets)) {
        checkPlainName('disk id', diskId);
        const size = point.diskSizes[diskId];
        if (size === undefined) {
          throw new SecondsiteError(
            'SECONDSITE_ERR_NOT_FOUND',
            `disk ${diskId} is not part of point ${pointId}`,
            {
              pointId,
              diskId,
            },
          );
        }
        diskSizes[diskId] = size;
      }
      const intent: PromotionIntent = {
        format: 'secondsite-promote-1',
        viewId,
        pointId,
        targets: { ...targets },
        diskSizes,
      };
      if (this.staging !== null) {
        await this.staging.close();
        this.staging = null;
      }
      await writeMetadataFile(this.storage, this.layout.promote, intent);
      await this.promote(intent);
      return intent;
    });
  }

  /** Runs (or re-runs) a written promotion intent to the end; the store is closed and gone after. */
  private async promote(intent: PromotionIntent): Promise<void> {
    try {
      await this.chainLock.write(() =>
        rewriteBases(this.storage, this.layout, intent, {
          changedAfter: (pointId, diskId) => this.changedAfter(pointId, diskId),
          readPointUnlocked: (pointId, diskId, o, l) => this.readPointNow(pointId, diskId, o, l),
          baseFile: (diskId) => this.baseFile(diskId),
        }),
      );
      await this.closeFiles();
      this.storeState = 'closed';
      await renameAndRemove(this.storage, this.layout, intent);
    } catch (e) {
      this.fail(e);
      throw e;
    }
  }

  /** Ranges of a disk changed after a point: the union of the ranges of its undo chain. */
  private changedAfter(pointId: string, diskId: string): Array<{ offsetBytes: number; lengthBytes: number }> {
    const ranges: Array<{ offsetBytes: number; lengthBytes: number }> = [];
    for (const undo of this.chainFor(pointId)) {
      for (const e of undo.disks.get(diskId)?.entries() ?? [])
        ranges.push({ offsetBytes: e.offsetBytes, lengthBytes: e.lengthBytes });
    }
    return coalesce(ranges);
  }

  readPoint(pointId: string, diskId: string, offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    return this.chainLock.read(() => {
      this.checkUsable();
      return this.readPointNow(pointId, diskId, offsetBytes, lengthBytes);
    });
  }

  /**
   * Walks a point's undo chain (oldest undo first) over a range: `visit` gets every piece an undo file
   * holds, each byte once, from the first undo that covers it. Returns what no undo covers: at the
   * point those bytes are the base's.
   */
  private async walkChain(
    pointId: string,
    diskId: string,
    offsetBytes: number,
    lengthBytes: number,
    visit: (undo: LoadedUndo, piece: Extent<SourceRef>) => Promise<void> | void,
  ): Promise<Array<{ offsetBytes: number; lengthBytes: number }>> {
    let unresolved = [{ offsetBytes, lengthBytes }];
    for (const undo of this.chainFor(pointId)) {
      const map = undo.disks.get(diskId);
      if (map === undefined) continue;
      const next: Array<{ offsetBytes: number; lengthBytes: number }> = [];
      for (const range of unresolved) {
        const pieces = map.covered(range.offsetBytes, range.lengthBytes);
        for (const p of pieces) await visit(undo, p);
        next.push(...gapsOf(range, pieces));
      }
      unresolved = next;
      if (unresolved.length === 0) break;
    }
    return unresolved;
  }

  /** readPoint without the chain lock (the caller holds it). */
  private async readPointNow(
    pointId: string,
    diskId: string,
    offsetBytes: number,
    lengthBytes: number,
  ): Promise<Buffer> {
    const buf = Buffer.alloc(lengthBytes);
    const unresolved = await this.walkChain(pointId, diskId, offsetBytes, lengthBytes, async (undo, p) => {
      const at = p.offsetBytes - offsetBytes;
      if (p.value.kind === 'data') await readFully(undo.file, buf, at, p.lengthBytes, p.value.posBytes);
      else buf.fill(0, at, at + p.lengthBytes);
    });
    // The rest comes from the base; its holes are already zeros in `buf`.
    const base = this.baseFile(diskId);
    for (const r of unresolved) {
      for (const e of await base.allocation(r.offsetBytes, r.lengthBytes)) {
        if (e.data) await readFully(base, buf, e.offsetBytes - offsetBytes, e.lengthBytes, e.offsetBytes);
      }
    }
    return buf;
  }

  allocationAtPoint(
    pointId: string,
    diskId: string,
    offsetBytes: number,
    lengthBytes: number,
  ): Promise<Array<{ offsetBytes: number; lengthBytes: number; data: boolean }>> {
    return this.chainLock.read(async () => {
      this.checkUsable();
      const out: Array<{ offsetBytes: number; lengthBytes: number; data: boolean }> = [];
      const unresolved = await this.walkChain(pointId, diskId, offsetBytes, lengthBytes, (_undo, p) => {
        out.push({ offsetBytes: p.offsetBytes, lengthBytes: p.lengthBytes, data: p.value.kind === 'data' });
      });
      const base = this.baseFile(diskId);
      for (const r of unresolved) {
        for (const e of await base.allocation(r.offsetBytes, r.lengthBytes)) out.push({ ...e });
      }
      out.sort((a, b) => a.offsetBytes - b.offsetBytes);
      const merged: typeof out = [];
      for (const e of out) {
        const last = merged[merged.length - 1];
        if (
          last !== undefined &&
          last.data === e.data &&
          last.offsetBytes + last.lengthBytes === e.offsetBytes
        ) {
          last.lengthBytes += e.lengthBytes;
        } else {
          merged.push(e);
        }
      }
      return merged;
    });
  }

  unpin(pointId: string): void {
    const n = (this.pins.get(pointId) ?? 0) - 1;
    if (n > 0) this.pins.set(pointId, n);
    else this.pins.delete(pointId);
  }

  // ---- Retention ----

  /**
   * Drops the points the retention policy does not keep: one catalogue change, no undo data written
   * (recovery-points.md section 6.1). A dropped point's undo list joins its kept predecessor's (the
   * oldest points' files are deleted); then the data the joined files hold for ranges the files ahead
   * of them cover is punched, and compaction is scheduled. Returns the dropped point ids.
   */
  applyRetention(retentionHours: number): Promise<string[]> {
    return this.mutate(async () => {
      let joined: Joined = [];
      const dropped: string[] = [];
      await this.chainLock.write(async () => {
        const points = this.cat.points;
        const drop = this.dropsOf(points, retentionHours);
        dropped.push(...drop);
        if (dropped.length === 0) return;
        // closing with the plan: a view opened while the catalogue is written cannot pin a dropped point
        const release = this.markClosing(drop);
        try {
          const next = dropPoints(points, drop);
          joined = next.joined;
          await this.publish({ ...this.cat, points: next.kept, nextFileId: this.nextFileId });
        } finally {
          release();
        }
      });
      if (dropped.length === 0) return [];
      try {
        await this.dropUnreferencedUndo();
      } catch (e) {
        this.fail(e);
        throw e;
      }
      await this.afterDrop(joined);
      return dropped;
    });
  }

  /** Frees the data of the ranges of `undo` that `before` covers (shadowed, invariant S): space only. */
  private async punchShadowed(undo: LoadedUndo, before: readonly LoadedUndo[]): Promise<void> {
    const ranges = shadowedData(undo, before);
    if (ranges.length === 0) return;
    const file = await this.storage.open(this.layout.undo(undo.fileName), 'readwrite');
    try {
      for (const r of ranges) await file.punchHole(r.posBytes, r.lengthBytes);
    } finally {
      await file.close();
    }
  }

  /**
   * Undo files in all lists, the longest list (compaction keeps it near log2(cycles)+1), and background
   * errors (punches, compaction steps) since the store was opened: status and metrics.
   */
  undoStats(): UndoStats {
    const lengths = this.cat.points.map((p) => p.undo.length);
    return {
      files: lengths.reduce((a, b) => a + b, 0),
      longestList: Math.max(0, ...lengths),
      backgroundErrors: this.backgroundErrors,
    };
  }

  private backgroundError(e: unknown): void {
    this.backgroundErrors++;
    this.options.onBackgroundError?.(e);
  }

  /** Undo lists per retained point, first file first (status and tests). */
  undoLists(): ReadonlyArray<{ pointId: string; undo: readonly UndoRef[] }> {
    return this.cat.points.map((p) => ({ pointId: p.pointId, undo: p.undo }));
  }

  /**
   * Runs compaction steps until no undo list needs a merge (after waiting for a background run);
   * returns how many merges it made. Used by tests and by stores opened with `compaction: 'manual'`.
   */
  async compactUndo(): Promise<number> {
    if (this.compactionRun !== null) await this.compactionRun;
    let merges = 0;
    while (await this.compactStep()) merges++;
    return merges;
  }

  private scheduleCompaction(): void {
    if ((this.options.compaction ?? 'background') !== 'background' || this.compactionStopped) return;
    this.compactionWanted = true;
    if (this.compactionRun === null) this.compactionRun = this.compactionLoop();
  }

  private async compactionLoop(): Promise<void> {
    for (;;) {
      this.compactionWanted = false;
      try {
        while (!this.compactionStopped && this.storeState === 'open' && (await this.compactStep()));
      } catch (e) {
        // the step cleaned up after itself; the next retention schedules another run
        this.backgroundError(e);
        this.compactionRun = null;
        return;
      }
      if (!this.compactionWanted || this.compactionStopped) {
        this.compactionRun = null;
        return;
      }
    }
  }

  /** Stops background compaction and waits for its step (before files are closed). */
  private async stopCompaction(): Promise<void> {
    this.compactionStopped = true;
    if (this.compactionRun !== null) await this.compactionRun;
  }

  /**
   * One merge of two adjacent files of an undo list (section 6.1): plan under the store's mutex, write
   * the merged file without it, publish under the mutex and the chain lock if the two files are still
   * adjacent. False when no list needs a merge (or the one that does is busy).
   */
  private async compactStep(): Promise<boolean> {
    const job = await this.mutate(() => {
      for (const p of this.cat.points) {
        const i = nextUndoMerge(p.undo.map((u) => u.cycles));
        if (i === null) continue;
        const a = p.undo[i] as UndoRef;
        const b = p.undo[i + 1] as UndoRef;
        if (this.busyUndo.has(a.file) || this.busyUndo.has(b.file)) continue;
        const name = `u-${p.sequence}-${this.nextFileId++}.undo`;
        const plan = planUndoMerge(
          [this.undoNamed(a.file), this.undoNamed(b.file)],
          p.undo.slice(0, i).map((u) => this.undoNamed(u.file)),
        );
        for (const f of [a.file, b.file, name]) this.busyUndo.add(f);
        return Promise.resolve({ a, b, name, plan });
      }
      return Promise.resolve(null);
    });
    if (job === null) return false;
    const { a, b, name } = job;
    try {
      await writeMergedUndo(this.storage, this.layout.undo(name), job.plan);
      await this.storage.syncDir(this.layout.undoDir);
      return await this.mutate(async () => {
        const at = this.cat.points.findIndex((p) =>
          p.undo.some((u, k) => u.file === a.file && p.undo[k + 1]?.file === b.file),
        );
        if (at < 0) return false; // the point went as the oldest meanwhile: the merged file is not needed
        const merged = await loadUndo(this.storage, this.layout.undo(name), name);
        await this.chainLock.write(async () => {
          const points = this.cat.points.map((p, k) => {
            if (k !== at) return p;
            const undo = p.undo.flatMap((u) =>
              u.file === a.file
                ? [{ file: name, cycles: a.cycles + b.cycles }]
                : u.file === b.file
                  ? []
                  : [u],
            );
            return { ...p, undo };
          });
          try {
            await this.publish({
              ...this.cat,
              points,
              nextFileId: Math.max(this.cat.nextFileId, this.nextFileId),
            });
          } catch (e) {
            await merged.file.close();
            throw e;
          }
          this.undos.set(name, merged);
        });
        return true;
      });
    } finally {
      for (const f of [a.file, b.file, name]) this.busyUndo.delete(f);
      // the merged-away files, or the merged file when it was not published
      if (this.storeState === 'open') await this.mutate(() => this.dropUnreferencedUndo());
    }
  }

  async close(): Promise<void> {
    await this.stopCompaction();
    await this.mutex.run(async () => {
      if (this.storeState === 'closed') return;
      this.storeState = 'closed';
      await this.closeFiles();
    });
  }

  // ---- internals ----

  private async recover(): Promise<void> {
    for (const d of this.cat.disks) {
      const path = this.layout.base(d.diskId);
      if (!(await this.storage.exists(path))) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_IO',
          `base image ${path} of disk ${d.diskId} is missing; the replica must be resynced`,
          { diskId: d.diskId, path },
        );
      }
      this.bases.set(d.diskId, await this.storage.open(path, 'readwrite'));
    }
    for (const file of undoFilesOf(this.cat))
      this.undos.set(file, await loadUndo(this.storage, this.layout.undo(file), file));
    const intentBody = (await readMetadataFile(this.storage, this.layout.intent)) as IntentBody | null;
    if (intentBody !== null) {
      if (intentBody.format !== 'secondsite-intent-1') {
        throw new SecondsiteError(
          'SECONDSITE_ERR_METADATA_CORRUPT',
          `intent ${this.layout.intent} has an unknown format`,
          {
            file: this.layout.intent,
          },
        );
      }
      if (!this.cat.points.some((p) => p.pointId === intentBody.point.pointId))
        await this.rollForward(intentBody);
      await this.cleanStaging();
    }
    await this.dropUnreferencedUndo();
    for (const viewId of await this.storage.list(this.layout.viewsDir)) {
      const pointId = await TestView.pointOf(this.storage, this.layout.viewDir(viewId));
      if (pointId === null) {
        await this.storage.removeTree(this.layout.viewDir(viewId));
        continue;
      }
      this.viewPointIds.set(viewId, pointId);
      this.pin(pointId);
    }
  }

  /** Phase 3-4 after a crash: the intent says redo and undo are complete; apply again and publish. */
  private async rollForward(intent: IntentBody): Promise<void> {
    const corrupt = (why: string): SecondsiteError =>
      new SecondsiteError(
        'SECONDSITE_ERR_METADATA_CORRUPT',
        `the interrupted commit of cycle ${intent.cycleId} cannot be finished (${why}); resync the replica`,
        { cycleId: intent.cycleId, reason: why },
      );
    if (!(await this.storage.exists(this.layout.redo))) throw corrupt('the staged redo log is missing');
    const file = await this.storage.open(this.layout.redo, 'read');
    try {
      const scan = await scanRedoLog(file, intent.redoBytes);
      if (
        scan.head?.cycleId !== intent.cycleId ||
        scan.head.epoch !== intent.epoch ||
        scan.validBytes !== intent.redoBytes ||
        scan.records !== intent.redoRecords
      ) {
        throw corrupt('the redo log does not match the intent');
      }
      if (intent.undoFile !== null && !this.undos.has(intent.undoFile)) {
        this.undos.set(
          intent.undoFile,
          await loadUndo(this.storage, this.layout.undo(intent.undoFile), intent.undoFile),
        );
      }
      await this.applyAndPublish(intent, file, buildRedoMap(scan.entries));
    } finally {
      await file.close();
    }
  }

  /** Phases 3 and 4: apply the redo to the bases, then publish the catalogue with the new point. */
  private async applyAndPublish(intent: IntentBody, redoFile: StorageFile, redo: RedoMap): Promise<Joined> {
    return await this.chainLock.write(async () => {
      await applyRedo(redoFile, redo, (diskId) => this.baseFile(diskId));
      const points = this.cat.points.map((p, i) =>
        i === this.cat.points.length - 1 && intent.undoFile !== null
          ? { ...p, undo: [{ file: intent.undoFile, cycles: 1 }] }
          : p,
      );
      points.push(intent.point);
      if (intent.undoFile !== null && !this.undos.has(intent.undoFile)) {
        this.undos.set(
          intent.undoFile,
          await loadUndo(this.storage, this.layout.undo(intent.undoFile), intent.undoFile),
        );
      }
      const { kept, joined } = dropPoints(points, new Set(intent.drop ?? []));
      await this.publish({
        ...this.cat,
        epoch: Math.max(this.cat.epoch, intent.point.epoch),
        nextSequence: intent.point.sequence + 1,
        nextFileId: Math.max(this.cat.nextFileId, intent.nextFileId),
        points: kept,
      });
      return joined;
    });
  }

  /** Phase 2: the current content of every range the redo will overwrite, into a new undo file. */
  private async captureUndo(fileName: string, redo: RedoMap): Promise<void> {
    await captureUndo(this.storage, this.layout.undo(fileName), redo, (diskId) => this.baseFile(diskId));
    await this.storage.syncDir(this.layout.undoDir);
  }

  /** Phase 5: the staging is no longer needed. */
  private async cleanStaging(): Promise<void> {
    if (await this.storage.exists(this.layout.intent)) await this.storage.unlink(this.layout.intent);
    if (await this.storage.exists(this.layout.redo)) await this.storage.unlink(this.layout.redo);
    await this.storage.syncDir(this.layout.stagingDir);
  }

  /**
   * Closes and deletes undo files the catalogue does not name (orphans of phase 2 or of a compaction,
   * merged-away files, dropped oldest points' files), except those a compaction step is using.
   */
  private async dropUnreferencedUndo(): Promise<void> {
    const referenced = undoFilesOf(this.cat);
    for (const f of this.busyUndo) referenced.add(f);
    for (const [name, undo] of [...this.undos]) {
      if (referenced.has(name)) continue;
      this.undos.delete(name);
      await undo.file.close();
    }
    let removed = false;
    for (const name of await this.storage.list(this.layout.undoDir)) {
      if (referenced.has(name)) continue;
      await this.storage.unlink(this.layout.undo(name));
      removed = true;
    }
    if (removed) await this.storage.syncDir(this.layout.undoDir);
  }

  /**
   * Replaces the catalogue. A failure fails the store: the new catalogue may or may not be durable
   * (a failed syncDir does not say), and writing a later one from the old in-memory copy could lower
   * the epoch or lose a point; only a reopen may read the truth.
   */
  private async publish(next: CatalogueBody): Promise<void> {
    try {
      await writeMetadataFile(this.storage, this.layout.catalogue, next);
    } catch (e) {
      this.fail(e);
      throw e;
    }
    this.cat = next;
  }

  /** The undo files a read of `pointId` goes through: its chain (its list, then the later points'). */
  private chainFor(pointId: string): LoadedUndo[] {
    const idx = this.cat.points.findIndex((p) => p.pointId === pointId);
    if (idx < 0) throw notFound(pointId);
    return this.cat.points.slice(idx).flatMap((p) => p.undo.map((u) => this.undoNamed(u.file)));
  }

  private undoNamed(file: string): LoadedUndo {
    const undo = this.undos.get(file);
    if (undo === undefined) {
      throw new SecondsiteError('SECONDSITE_ERR_INTERNAL', `undo file ${file} is not loaded`, { file });
    }
    return undo;
  }

  baseFile(diskId: string): StorageFile {
    const base = this.bases.get(diskId);
    if (base === undefined) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `disk ${diskId} is not part of this relationship`,
        {
          diskId,
        },
      );
    }
    return base;
  }

  private findPoint(pointId: string): StoredPoint {
    const p = this.cat.points.find((q) => q.pointId === pointId);
    if (p === undefined) throw notFound(pointId);
    return p;
  }

  private pin(pointId: string): void {
    this.pins.set(pointId, (this.pins.get(pointId) ?? 0) + 1);
  }

  private checkEpochCurrent(epoch: number, cycleId: string): void {
    if (!Number.isSafeInteger(epoch) || epoch < this.cat.epoch) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_STALE_EPOCH',
        `cycle ${cycleId} has epoch ${epoch}, older than the relationship's epoch ${this.cat.epoch}; the sender was fenced by a failover`,
        { cycleId, epoch, current: this.cat.epoch },
      );
    }
  }

  private mutate<T>(fn: () => Promise<T>): Promise<T> {
    return this.mutex.run(async () => {
      this.checkUsable();
      return fn();
    });
  }

  private checkUsable(): void {
    if (this.storeState === 'open') return;
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_STATE',
      this.storeState === 'closed'
        ? `the recovery-point store of ${this.relationshipId} is closed`
        : `the recovery-point store of ${this.relationshipId} failed in the middle of a commit or retention; reopen it to recover`,
      { relationshipId: this.relationshipId, state: this.storeState },
      { cause: this.failure },
    );
  }

  private fail(e: unknown): void {
    this.storeState = 'failed';
    this.failure = e;
  }

  private async closeFiles(): Promise<void> {
    if (this.staging !== null) await this.staging.close();
    this.staging = null;
    for (const f of this.bases.values()) await f.close();
    this.bases.clear();
    for (const u of this.undos.values()) await u.file.close();
    this.undos.clear();
  }
}

/** The last steps of a promotion: rename the rewritten bases to their targets, remove the store. */
async function renameAndRemove(
  storage: Storage,
  layout: StoreLayout,
  intent: PromotionIntent,
): Promise<void> {
  const dirs = new Set<string>();
  for (const [diskId, target] of Object.entries(intent.targets)) {
    if (!(await storage.exists(layout.base(diskId)))) continue;
    await storage.rename(layout.base(diskId), target);
    dirs.add(target.slice(0, target.lastIndexOf('/')));
  }
  for (const d of dirs) await storage.syncDir(d);
  await storage.syncDir(layout.disksDir);
  // the directory leaves in one atomic step, then is deleted at leisure
  const parent = layout.dir.slice(0, layout.dir.lastIndexOf('/'));
  const gone = `${layout.dir}.promoted`;
  await storage.removeTree(gone);
  await storage.rename(layout.dir, gone);
  await storage.syncDir(parent);
  await storage.removeTree(gone);
}

function toInfo(p: StoredPoint): RecoveryPointInfo {
  return {
    pointId: p.pointId,
    sequence: p.sequence,
    epoch: p.epoch,
    cycleId: p.cycleId,
    cutWallMs: p.cutWallMs,
    committedWallMs: p.committedWallMs,
    consistency: p.consistency,
  };
}

function notFound(pointId: string): SecondsiteError {
  return new SecondsiteError(
    'SECONDSITE_ERR_RECOVERY_POINT_NOT_FOUND',
    `recovery point ${pointId} does not exist or is no longer retained; list the points and pick another`,
    { pointId },
  );
}

/**
 * Host-level failover on the replica host (docs/design/failover.md sections 3-6): test failover and
 * cleanup, unplanned failover to a retained point (pending commit), change of recovery point, commit
 * (the view becomes ordinary disks, in place, while the VM runs), cancel.
 *
 * Per relationship a protection record (`<stateDir>/protection/<relationshipId>.json`, atomic replace)
 * says what this host did; the pure machine in src/domain/failover decides what is allowed. Each
 * operation writes the record (with the step it is in) before it acts, so `start()` after a crash
 * brings back the views, exports and VMs of a test or pending failover and finishes a commit whose
 * promotion intent was written. Every step is idempotent.
 */
import { request } from 'node:http';
import type { Clock } from '../../domain/clock.js';
import { SecondsiteError } from '../../domain/errors.js';
import { protectionTransition, type ProtectionState } from '../../domain/failover/protection.machine.js';
import type { VmTemplate } from '../../protocol/host-api/vms.schema.js';
import type { DiskService } from '../agent/disk-service.js';
import type { ReplicaService } from '../agent/replica-service.js';
import type { VmService } from '../agent/vm-service.js';
import type { BlockDevice } from '../block-device/block-device.js';
import { readWholeFile, replaceFileAtomically } from '../disks/atomic-file.js';
import type { NbdServer } from '../nbd/nbd-server.js';
import type { Logger } from '../../observability/logger.js';
import type { PointStore } from '../recovery-points/point-store.js';
import type { TestView } from '../recovery-points/test-view.js';
import type { Storage } from '../storage/storage.js';
import { deleteNetns } from '../vm/vm-netns.js';
import { SwitchableDevice } from './switchable.device.js';

export interface ProtectionRecord {
  readonly format: 'secondsite-protection-1';
  readonly relationshipId: string;
  /** The VM's id on this host (the recovery VM); the test VM is `<vmId>-test`. */
  readonly vmId: string;
  readonly state: ProtectionState;
  /** The point the test or recovery VM runs from. */
  readonly pointId: string | null;
  readonly epoch: number;
  readonly template: VmTemplate;
  /** Disk ids and sizes at the point, boot disk first. */
  readonly disks: ReadonlyArray<{ diskId: string; sizeBytes: number }>;
  /** The step of a running operation; null when none runs. */
  readonly step: 'starting' | 'committing' | null;
  readonly updatedWallMs: number;
}

export interface FailoverView {
  relationshipId: string;
  vmId: string;
  state: ProtectionState;
  pointId: string | null;
  epoch: number;
  /** The VM this host runs for it (test VM or recovery VM), null when none. */
  runningVmId: string | null;
  exports: string[];
  /** The VM's disks at the point (boot disk first); after commit, ordinary disks of this host. */
  diskIds: string[];
}

const DEFAULT_TEMPLATE: VmTemplate = { nics: [], guest: {} };
const PROBE_TIMEOUT_MS = 2000;

export class FailoverService {
  private readonly records = new Map<string, ProtectionRecord>();
  private readonly views = new Map<string, TestView>();
  private readonly switchables = new Map<string, SwitchableDevice>();
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    private readonly storage: Storage,
    private readonly stateDir: string,
    private readonly replicas: ReplicaService,
    private readonly disks: DiskService,
    private readonly vms: VmService,
    private readonly nbd: NbdServer,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  private get dir(): string {
    return `${this.stateDir}/protection`;
  }

  /** Loads the records and brings back what a crash interrupted (call after the replica service started). */
  async start(): Promise<void> {
    await this.storage.mkdir(this.dir);
    for (const name of await this.storage.list(this.dir)) {
      if (!name.endsWith('.json')) continue;
      const raw = await readWholeFile(this.storage, `${this.dir}/${name}`);
      if (!raw) continue;
      const rec = JSON.parse(raw.toString('utf8')) as ProtectionRecord;
      if (rec.format !== 'secondsite-protection-1') continue;
      this.records.set(rec.relationshipId, rec);
    }
    await this.discardOrphanViews();
    for (const rec of [...this.records.values()]) {
      try {
        await this.locked(rec.relationshipId, () => this.recover(rec));
      } catch (e) {
        this.log.error('could not bring back a failover after a restart', {
          relationshipId: rec.relationshipId,
          state: rec.state,
          error: (e as Error).message,
        });
      }
    }
  }

  /**
   * Forgets a committed failover: this host becomes a replica of the relationship again (reverse
   * replication after a failback), so its receiver must accept the new primary.
   */
  async retire(relationshipId: string): Promise<void> {
    await this.locked(relationshipId, async () => {
      const rec = this.records.get(relationshipId);
      if (rec?.state === 'failed-over') await this.forget(relationshipId);
    });
  }

  /** Why the replica of a relationship may not be deleted now (a test failover or failover runs), or null. */
  deleteRefusal(relationshipId: string): string | null {
    const state = this.get(relationshipId).state;
    return state === 'receiving'
      ? null
      : `${relationshipId} is in state ${state} on this host; clean up the test failover or finish the failover first`;
  }

  /** True when this host took over the relationship's VM (the old primary must be refused). */
  failedOver(relationshipId: string): boolean {
    const s = this.records.get(relationshipId)?.state;
    return s === 'failed-over';
  }

  list(): FailoverView[] {
    return [...this.records.values()].map((r) => this.view(r));
  }

  get(relationshipId: string): FailoverView {
    const rec = this.records.get(relationshipId);
    if (rec) return this.view(rec);
    return {
      relationshipId,
      vmId: relationshipId,
      state: 'receiving',
      pointId: null,
      epoch: 0,
      runningVmId: null,
      exports: [],
      diskIds: [],
    };
  }

  // ---- test failover ----

  testFailover(
    relationshipId: string,
    options: { pointId: string; vm?: VmTemplate | undefined },
  ): Promise<FailoverView> {
    return this.locked(relationshipId, async () => {
      const current = this.records.get(relationshipId);
      if (current?.state === 'test-failover') return this.view(current);
      const state = protectionTransition(relationshipId, current?.state ?? 'receiving', 'test-failover');
      const store = await this.replicas.pointStore(relationshipId);
      const point = await resolvePoint(store, relationshipId, options.pointId);
      // the view pins the point before anything refers to it (retention runs in every commit)
      await this.openView(store, testViewIdOf(relationshipId), point.pointId);
      const rec = await this.save({
        format: 'secondsite-protection-1',
        relationshipId,
        vmId: relationshipId,
        state,
        pointId: point.pointId,
        epoch: store.epoch(),
        template: options.vm ?? (await this.replicas.vmTemplate(relationshipId)) ?? DEFAULT_TEMPLATE,
        disks: disksAt(store, point.pointId),
        step: 'starting',
        updatedWallMs: this.clock.wallMs(),
      });
      await this.bringUpTest(rec, store);
      this.log.info('test failover started', { relationshipId, pointId: point.pointId });
      return this.view(await this.save({ ...rec, step: null }));
    });
  }

  /** Removes everything a test failover created. Idempotent: cleaning up nothing is not an error. */
  testCleanup(relationshipId: string): Promise<{ cleaned: boolean; view: FailoverView }> {
    return this.locked(relationshipId, async () => {
      const rec = this.records.get(relationshipId);
      if (rec && rec.state !== 'test-failover')
        protectionTransition(relationshipId, rec.state, 'test-cleanup');
      const vmId = rec?.vmId ?? relationshipId;
      await this.vms.remove(testVmIdOf(vmId), { powerOff: true });
      const exports = rec ? rec.disks.map((d) => testExportOf(relationshipId, d.diskId)) : [];
      for (const name of exports) await this.nbd.disconnectExport(name);
      // Forget the record before the view goes: a crash in between leaves an orphan view (discarded at
      // the next start), never a record naming a point that retention may drop once it is unpinned.
      if (rec) await this.forget(relationshipId);
      const store = await this.replicas.pointStore(relationshipId);
      await this.discardView(store, testViewIdOf(vmId));
      if (rec === undefined || rec.template.nics.length > 0)
        await deleteNetns(netnsOf(vmId)).catch(() => false);
      this.log.info('test failover cleaned up', { relationshipId });
      return { cleaned: rec !== undefined, view: this.get(relationshipId) };
    });
  }

  // ---- failover, change point, cancel, commit ----

  failover(
    relationshipId: string,
    options: { pointId: string; force: boolean; vm?: VmTemplate | undefined },
  ): Promise<FailoverView> {
    return this.locked(relationshipId, async () => {
      const current = this.records.get(relationshipId);
      if (current?.state === 'failover-pending-commit' && current.step === null) return this.view(current);
      const state = protectionTransition(relationshipId, current?.state ?? 'receiving', 'failover');
      const store = await this.replicas.pointStore(relationshipId);
      const template = options.vm ?? (await this.replicas.vmTemplate(relationshipId)) ?? DEFAULT_TEMPLATE;
      for (const d of disksAt(store, (await resolvePoint(store, relationshipId, options.pointId)).pointId))
        await this.refuseLocalDisk(relationshipId, d.diskId);
      if (!options.force) await this.refuseIfPrimaryAnswers(relationshipId, template);
      // Fence the old primary first (durable): no cycle commits after this, so no retention run can
      // drop the point chosen next; then pin it with the view before the record names it.
      const epoch = store.epoch() + 1;
      await store.setEpoch(epoch);
      const point = await resolvePoint(store, relationshipId, options.pointId);
      const disks = disksAt(store, point.pointId);
      await this.openView(store, recoveryViewIdOf(relationshipId), point.pointId);
      const rec = await this.save({
        format: 'secondsite-protection-1',
        relationshipId,
        vmId: relationshipId,
        state,
        pointId: point.pointId,
        epoch,
        template,
        disks,
        step: 'starting',
        updatedWallMs: this.clock.wallMs(),
      });
      await this.bringUpRecovery(rec, store);
      this.log.info('failover started (pending commit)', { relationshipId, pointId: point.pointId, epoch });
      return this.view(await this.save({ ...rec, step: null }));
    });
  }

  changePoint(relationshipId: string, pointId: string): Promise<FailoverView> {
    return this.locked(relationshipId, async () => {
      const rec = this.require(relationshipId);
      protectionTransition(relationshipId, rec.state, 'change-point');
      const store = await this.replicas.pointStore(relationshipId);
      const point = await resolvePoint(store, relationshipId, pointId);
      if (point.pointId === rec.pointId) return this.view(rec);
      await this.stopRecovery(rec, { removeVm: false });
      await this.discardView(store, recoveryViewIdOf(rec.vmId));
      await this.openView(store, recoveryViewIdOf(rec.vmId), point.pointId);
      const next = await this.save({
        ...rec,
        pointId: point.pointId,
        disks: disksAt(store, point.pointId),
        step: 'starting',
        updatedWallMs: this.clock.wallMs(),
      });
      await this.bringUpRecovery(next, store);
      this.log.info('recovery point changed', { relationshipId, pointId: point.pointId });
      return this.view(await this.save({ ...next, step: null }));
    });
  }

  /**
   * Back to receiving: the recovery VM and its view are gone; the raised epoch stays. Cancelling when
   * no failover runs (a repeated cancel) changes nothing and says so.
   */
  cancel(relationshipId: string): Promise<FailoverView & { resumeEpoch: number; cancelled: boolean }> {
    return this.locked(relationshipId, async () => {
      const store = await this.replicas.pointStore(relationshipId);
      const rec = this.records.get(relationshipId);
      if (rec === undefined) {
        return {
          ...this.get(relationshipId),
          epoch: store.epoch(),
          resumeEpoch: store.epoch(),
          cancelled: false,
        };
      }
      protectionTransition(relationshipId, rec.state, 'cancel');
      // VM and exports first, then the record, then the view: a crash in between leaves an orphan
      // view (discarded at the next start), never a record naming a point that is no longer pinned
      await this.stopRecovery(rec, { removeVm: true });
      await this.forget(relationshipId);
      await this.discardView(store, recoveryViewIdOf(rec.vmId));
      this.log.info('failover cancelled', { relationshipId, epoch: store.epoch() });
      return {
        ...this.get(relationshipId),
        epoch: store.epoch(),
        resumeEpoch: store.epoch(),
        cancelled: true,
      };
    });
  }

  /**
   * Turns the recovery VM's view into ordinary disks of this host while the VM runs: its I/O is held,
   * the view is promoted in place (the store and the other points are gone), and the exports switch
   * to the new disks, tracked.
   */
  commit(relationshipId: string): Promise<FailoverView> {
    return this.locked(relationshipId, async () => {
      const rec = this.require(relationshipId);
      if (rec.state === 'failed-over') return this.view(rec);
      const state = protectionTransition(relationshipId, rec.state, 'commit');
      const committing = await this.save({ ...rec, step: 'committing', updatedWallMs: this.clock.wallMs() });
      const targets: Record<string, string> = {};
      for (const d of rec.disks) targets[d.diskId] = this.disks.imagePath(d.diskId);
      const devices = rec.disks.map((d) => this.switchables.get(d.diskId));
      if (devices.some((d) => d === undefined)) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          `the recovery disks of ${relationshipId} are not served; restart the host agent and commit again`,
          { relationshipId },
        );
      }
      await holdAll(devices as SwitchableDevice[], async () => {
        const viewId = recoveryViewIdOf(rec.vmId);
        await this.views.get(viewId)?.close();
        this.views.delete(viewId);
        await this.replicas.promote(relationshipId, recoveryViewIdOf(rec.vmId), targets);
        const next: BlockDevice[] = [];
        for (const d of rec.disks) next.push(await this.disks.adoptImage(d.diskId, d.diskId, d.sizeBytes));
        return next;
      });
      this.log.info('failover committed', { relationshipId, pointId: rec.pointId });
      return this.view(
        await this.save({ ...committing, state, step: null, updatedWallMs: this.clock.wallMs() }),
      );
    });
  }

  async close(): Promise<void> {
    for (const v of this.views.values()) await v.close();
    this.views.clear();
  }

  // ---- internals ----

  private async recover(rec: ProtectionRecord): Promise<void> {
    if (rec.state === 'test-failover') {
      const store = await this.replicas.pointStore(rec.relationshipId);
      if (!store.points().some((p) => p.pointId === rec.pointId)) {
        // cannot happen with the orders above, but a test failover whose point is gone cannot come
        // back: finish its cleanup instead (back to receiving)
        this.log.warn('the point of a test failover is gone; cleaning it up', {
          relationshipId: rec.relationshipId,
          pointId: rec.pointId,
        });
        await this.vms.remove(testVmIdOf(rec.vmId), { powerOff: true });
        await this.forget(rec.relationshipId);
        await this.discardView(store, testViewIdOf(rec.vmId));
        await deleteNetns(netnsOf(rec.vmId)).catch(() => false);
        return;
      }
      await this.bringUpTest(rec, store);
      if (rec.step !== null) await this.save({ ...rec, step: null });
      return;
    }
    if (
      rec.state === 'failover-pending-commit' &&
      rec.step === 'committing' &&
      !this.replicas.has(rec.relationshipId)
    ) {
      // the promotion finished (the replica service completed its intent at start): adopt the images.
      // A disk adopted before the crash is in the disk store, so the disk service already serves it.
      for (const d of rec.disks) {
        const dev = await this.disks.adoptImage(d.diskId, d.diskId, d.sizeBytes);
        if (!this.nbd.lookup(d.diskId))
          this.nbd.addExport(d.diskId, dev, { description: `secondsite disk ${d.diskId}` });
      }
      await this.startVm(rec.vmId);
      await this.save({ ...rec, state: 'failed-over', step: null, updatedWallMs: this.clock.wallMs() });
      return;
    }
    if (rec.state === 'failover-pending-commit') {
      const store = await this.replicas.pointStore(rec.relationshipId);
      await store.setEpoch(rec.epoch);
      await this.bringUpRecovery(rec, store);
      if (rec.step !== null) await this.save({ ...rec, step: null });
      return;
    }
    if (rec.state === 'failed-over') {
      // ordinary disks now, served by the disk service; the VM comes back up
      await this.startVm(rec.vmId);
    }
  }

  /** Views a crash left behind before their record was written: nothing refers to them. */
  private async discardOrphanViews(): Promise<void> {
    for (const replica of await this.replicas.list()) {
      const rec = this.records.get(replica.relationshipId);
      const store = await this.replicas.pointStore(replica.relationshipId);
      for (const viewId of [...store.testViews().keys()]) {
        const wanted =
          rec?.state === 'test-failover'
            ? testViewIdOf(rec.vmId)
            : rec?.state === 'failover-pending-commit'
              ? recoveryViewIdOf(rec.vmId)
              : null;
        if (viewId === wanted) continue;
        if (!viewId.startsWith('test-') && !viewId.startsWith('failover-')) continue;
        this.log.warn('discarding a view no failover refers to', {
          relationshipId: replica.relationshipId,
          viewId,
        });
        await this.discardView(store, viewId);
      }
      // and the isolated network of a test failover whose cleanup a crash cut short
      if (rec?.state !== 'test-failover')
        await deleteNetns(netnsOf(rec?.vmId ?? replica.relationshipId)).catch(() => false);
    }
  }

  private async bringUpTest(rec: ProtectionRecord, store: PointStore): Promise<void> {
    const vmId = testVmIdOf(rec.vmId);
    const view = await this.openView(store, testViewIdOf(rec.vmId), rec.pointId as string);
    const exports: Array<{ diskId: string; exportName: string }> = [];
    for (const d of rec.disks) {
      const exportName = testExportOf(rec.relationshipId, d.diskId);
      if (!this.nbd.lookup(exportName))
        this.nbd.addExport(exportName, await view.disk(d.diskId), { description: `test failover ${vmId}` });
      exports.push({ diskId: d.diskId, exportName });
    }
    const netns = rec.template.nics.length > 0 ? netnsOf(rec.vmId) : undefined;
    await this.vms.defineFrom(
      vmId,
      { ...rec.template, name: `${rec.template.name ?? rec.vmId} (test)` },
      exports,
      netns,
    );
    await this.startVm(vmId);
  }

  private async bringUpRecovery(rec: ProtectionRecord, store: PointStore): Promise<void> {
    const view = await this.openView(store, recoveryViewIdOf(rec.vmId), rec.pointId as string);
    const exports: Array<{ diskId: string; exportName: string }> = [];
    for (const d of rec.disks) {
      if (!this.nbd.lookup(d.diskId)) {
        const dev = new SwitchableDevice(await view.disk(d.diskId));
        this.switchables.set(d.diskId, dev);
        this.nbd.addExport(d.diskId, dev, { description: `recovery disk ${d.diskId}` });
      }
      exports.push({ diskId: d.diskId, exportName: d.diskId });
    }
    await this.vms.defineFrom(rec.vmId, rec.template, exports);
    await this.startVm(rec.vmId);
  }

  /** Stops the recovery VM (and removes its definition when asked) and its exports; the view stays. */
  private async stopRecovery(rec: ProtectionRecord, options: { removeVm: boolean }): Promise<void> {
    if (options.removeVm) await this.vms.remove(rec.vmId, { powerOff: true });
    else
      await this.vms.powerOff(rec.vmId).catch((e: unknown) => {
        if (!(e instanceof SecondsiteError && e.code === 'SECONDSITE_ERR_NOT_FOUND')) throw e;
      });
    for (const d of rec.disks) {
      await this.nbd.disconnectExport(d.diskId);
      this.switchables.delete(d.diskId);
    }
  }

  private async startVm(vmId: string): Promise<void> {
    if (!(await this.vms.isRunning(vmId))) await this.vms.start(vmId);
  }

  /** Opens a view over the point; a leftover view of that id over another point is replaced. */
  private async openView(store: PointStore, viewId: string, pointId: string): Promise<TestView> {
    const open = this.views.get(viewId);
    if (open && open.pointId === pointId) return open;
    const existing = store.testViews().get(viewId);
    if (open || (existing !== undefined && existing !== pointId)) await this.discardView(store, viewId);
    const view = await store.openTestView(pointId, viewId);
    this.views.set(viewId, view);
    return view;
  }

  /** Deletes a view (open here, or left on disk by a crash): no file of it is left. */
  private async discardView(store: PointStore, viewId: string): Promise<void> {
    const open = this.views.get(viewId);
    this.views.delete(viewId);
    if (open) {
      await open.discard();
      return;
    }
    const pointId = store.testViews().get(viewId);
    if (pointId === undefined) return;
    await (await store.openTestView(pointId, viewId)).discard();
  }

  private async refuseLocalDisk(relationshipId: string, diskId: string): Promise<void> {
    const exists = await this.disks.get(diskId).then(
      () => true,
      () => false,
    );
    if (exists) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_ALREADY_EXISTS',
        `this host already has a disk '${diskId}'; the recovery VM of ${relationshipId} needs that id (delete or rename the local disk)`,
        { relationshipId, diskId },
      );
    }
  }

  /** Refuses an unforced failover while the primary VM still answers on one of its NICs. */
  private async refuseIfPrimaryAnswers(relationshipId: string, template: VmTemplate): Promise<void> {
    for (const nic of template.nics) {
      if (nic.port === 0) continue;
      const state = await probeGuest(nic.ipv4, nic.port);
      if (state === 'running' || state === 'quiesced') {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          `the primary VM of ${relationshipId} still runs and answers at ${nic.ipv4}:${nic.port}; shut it down (or use a planned failover), or fail over with --force if you accept two running copies`,
          { relationshipId, address: `${nic.ipv4}:${nic.port}` },
        );
      }
    }
  }

  private require(relationshipId: string): ProtectionRecord {
    const rec = this.records.get(relationshipId);
    if (!rec) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `no failover of ${relationshipId} is in progress on this host (it is receiving); start one with 'secondsite host failover start ${relationshipId}'`,
        { relationshipId, state: 'receiving' },
      );
    }
    return rec;
  }

  private async save(rec: ProtectionRecord): Promise<ProtectionRecord> {
    await replaceFileAtomically(
      this.storage,
      `${this.dir}/${rec.relationshipId}.json`,
      Buffer.from(`${JSON.stringify(rec, null, 2)}\n`),
    );
    this.records.set(rec.relationshipId, rec);
    return rec;
  }

  private async forget(relationshipId: string): Promise<void> {
    const path = `${this.dir}/${relationshipId}.json`;
    if (await this.storage.exists(path)) {
      await this.storage.unlink(path);
      await this.storage.syncDir(this.dir);
    }
    this.records.delete(relationshipId);
  }

  private view(rec: ProtectionRecord): FailoverView {
    const testing = rec.state === 'test-failover';
    return {
      relationshipId: rec.relationshipId,
      vmId: rec.vmId,
      state: rec.state,
      pointId: rec.pointId,
      epoch: rec.epoch,
      runningVmId: testing ? testVmIdOf(rec.vmId) : rec.vmId,
      exports: rec.disks.map((d) => (testing ? testExportOf(rec.relationshipId, d.diskId) : d.diskId)),
      diskIds: rec.disks.map((d) => d.diskId),
    };
  }

  /** One operation at a time per relationship. */
  private locked<T>(relationshipId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(relationshipId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.locks.set(
      relationshipId,
      next.catch(() => undefined),
    );
    return next;
  }
}

export function testVmIdOf(vmId: string): string {
  return `${vmId.slice(0, 35)}-test`;
}
function testViewIdOf(vmId: string): string {
  return `test-${vmId}`;
}
function recoveryViewIdOf(vmId: string): string {
  return `failover-${vmId}`;
}
export function testExportOf(relationshipId: string, diskId: string): string {
  return `test/${relationshipId}/${diskId}`;
}
/** The isolated network of a VM's test failover (namespace names are short). */
export function netnsOf(vmId: string): string {
  return `ss-test-${vmId.slice(0, 23)}`;
}

/** The point a failover names (an id or "latest", see PointStore.resolvePoint); NOT_FOUND otherwise. */
async function resolvePoint(
  store: PointStore,
  relationshipId: string,
  pointId: string,
): Promise<{ pointId: string; cutWallMs: number }> {
  const p = await store.resolvePoint(pointId);
  if (!p) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_RECOVERY_POINT_NOT_FOUND',
      `relationship '${relationshipId}' has no retained point '${pointId}'; list them with 'secondsite host replica points ${relationshipId}'`,
      { relationshipId, pointId },
    );
  }
  return p;
}

function disksAt(store: PointStore, pointId: string): Array<{ diskId: string; sizeBytes: number }> {
  return store
    .disks()
    .filter((d) => store.pointDiskSize(pointId, d.diskId) !== undefined)
    .map((d) => ({
      diskId: d.diskId,
      sizeBytes: store.pointDiskSize(pointId, d.diskId) as number,
    }));
}

/** Holds every device's I/O at once, runs `fn`, and switches each device to what it returned. */
async function holdAll(devices: SwitchableDevice[], fn: () => Promise<BlockDevice[]>): Promise<void> {
  const step = async (i: number, replaced: { next: BlockDevice[] | null }): Promise<void> => {
    const dev = devices[i];
    if (dev === undefined) {
      replaced.next = await fn();
      return;
    }
    await dev.switchTo(async (old) => {
      await step(i + 1, replaced);
      return replaced.next?.[i] ?? old;
    });
  };
  await step(0, { next: null });
}

/** The state a guest reports at ip:port (GET /state), or null when nothing answers in time. */
function probeGuest(ipv4: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const req = request(
      { host: ipv4, port, path: '/state', method: 'GET', timeout: PROBE_TIMEOUT_MS },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c.slice(0, 65536)));
        res.on('end', () => {
          try {
            resolve(((JSON.parse(body) as { state?: unknown }).state as string | undefined) ?? 'running');
          } catch {
            resolve('running');
          }
        });
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
    req.end();
  });
}

/**
 * The replica side of the host agent (docs/design/host-agent.md section 4): the replication listener
 * (mutual TLS 1.3, authorization list from host.json), one recovery-point store per relationship in
 * its storage location, retention after every commit (hours from the primary's policy, sent in
 * HELLO), and read-only NBD exports of retained points.
 *
 * A point export costs metadata only: it is a view (the latest point reads the base image, older points
 * read through the undo chain) and pins the point against retention until it is unexported.
 */
import type { Clock } from '../../domain/clock.js';
import { SecondsiteError } from '../../domain/errors.js';
import type { RecoveryPointInfo, ReplicaStore } from '../recovery-points/replica-store.js';
import type { BlockDevice, BlockExtent } from '../block-device/block-device.js';
import type { NbdServer } from '../nbd/nbd-server.js';
import type { Logger } from '../../observability/logger.js';
import type { TLSSocket } from 'node:tls';
import type { TlsIdentity } from '../pki/tls-config.js';
import { PointStore, type UndoStats } from '../recovery-points/point-store.js';
import { seedStore } from '../recovery-points/point-seeding.js';
import type { PointDiskReader } from '../recovery-points/replica-store.js';
import { AuthorizationList } from '../replication/authorization-list.js';
import { ReplicationReceiver } from '../replication/replication-receiver.js';
import type { Storage } from '../storage/storage.js';
import type { HostConfig } from './host-config.js';
import { join } from 'node:path';
import { vmTemplateSchema, type VmTemplate } from '../../protocol/host-api/vms.schema.js';
import { readWholeFile, replaceFileAtomically } from '../disks/atomic-file.js';

export interface ReplicaView {
  relationshipId: string;
  storageLocation: string;
  epoch: number;
  disks: ReadonlyArray<{ diskId: string; sizeBytes: number }>;
  points: ReadonlyArray<RecoveryPointInfo>;
  latestPoint: RecoveryPointInfo | null;
  /** now - cut time of the latest point. */
  lagMs: number | null;
  exports: string[];
  /** Undo files of the retained points (compaction keeps the longest list near log2(cycles)+1). */
  undo: UndoStats;
}

/** What a metrics scrape reads of one open replica store. */
export interface ReplicaSummary {
  relationshipId: string;
  points: number;
  latestCutWallMs: number | null;
  epoch: number;
  undo: UndoStats;
}

export interface PointExport {
  relationshipId: string;
  pointId: string;
  disks: Array<{ diskId: string; exportName: string; nbdUri: string; sizeBytes: number }>;
}

interface OpenStore {
  store: PointStore;
  storageLocation: string;
}

export class ReplicaService {
  private receiver: ReplicationReceiver | null = null;
  private port: number | null = null;
  private readonly stores = new Map<string, Promise<OpenStore>>();
  /** Stores whose open finished (for synchronous readers such as metrics). */
  private readonly opened = new Map<string, OpenStore>();
  private readonly exported = new Map<string, { names: string[]; readers: PointDiskReader[] }>();
  /** The VM definition last saved per relationship (as sent). */
  private readonly vmConfigs = new Map<string, string>();

  constructor(
    private readonly storage: Storage,
    private readonly config: HostConfig,
    private readonly nbd: NbdServer,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** The replication port, or null when this host has no certificate yet (replication disabled). */
  get listeningPort(): number | null {
    return this.port;
  }

  /**
   * Asked before a store is opened for a connecting primary: a reason to refuse (the relationship was
   * failed over on this host), or null.
   */
  /**
   * Why a sender may not open `relationshipId`'s store (it was failed over to this host), or null. Until
   * the agent sets it (`acceptSenders`, once its failovers are known) every sender is told to come back:
   * a store opened before would be created anew for a relationship a crash left failed over.
   */
  private refuseOpen: ((relationshipId: string) => string | null) | null = null;

  acceptSenders(refuseOpen: (relationshipId: string) => string | null): void {
    this.refuseOpen = refuseOpen;
  }

  /** The authorization list in force (set by the agent from its AuthorizationService). */
  authorization: () => AuthorizationList = () => new AuthorizationList(this.config.replication.authorization);

  /** New TLS trust for the replication listener (see ReplicationReceiver.updateTls). */
  updateTls(identity: TlsIdentity): void {
    this.receiver?.updateTls(identity);
  }

  /** The host peer API, served on the replication port to clients that ask for `alpn` (set by the agent). */
  peer: {
    alpn: string;
    onConnection: (socket: TLSSocket) => void;
    admit?: (socket: TLSSocket) => boolean;
  } | null = null;

  async start(identity: TlsIdentity | null): Promise<void> {
    for (const [location, dir] of Object.entries(this.config.replication.storageLocations)) {
      await this.storage.mkdir(dir);
      for (const name of await this.storage.list(dir)) {
        if (name.endsWith('.promoted')) {
          await this.storage.removeTree(`${dir}/${name}`); // the end of a finished promotion
          continue;
        }
        const options = { storage: this.storage, storageDir: dir, relationshipId: name, clock: this.clock };
        const promoted = await PointStore.finishPromotion(options);
        if (promoted !== null) {
          this.log.info('finished a failover commit interrupted by a restart', { relationshipId: name });
          continue;
        }
        await this.open(name, location);
      }
    }
    if (!identity) {
      this.log.warn('replication listener not started: this host has no certificate', {
        pkiDir: this.config.replication.pkiDir,
      });
      return;
    }
    this.receiver = new ReplicationReceiver({
      tls: identity,
      host: this.config.replication.listenHost,
      port: this.config.replication.listenPort,
      authorization: () => this.authorization(),
      storageLocations: this.config.replication.storageLocations,
      openStore: async (req) => {
        if (this.refuseOpen === null) {
          throw new SecondsiteError(
            'SECONDSITE_ERR_STARTING',
            'the replica host is still starting; the sender tries again in a moment',
            { relationshipId: req.relationshipId },
          );
        }
        const refusal = this.refuseOpen(req.relationshipId);
        if (refusal !== null) {
          throw new SecondsiteError('SECONDSITE_ERR_STALE_EPOCH', refusal, {
            relationshipId: req.relationshipId,
          });
        }
        return (await this.open(req.relationshipId, req.storageLocation)).store;
      },
      onEvent: (event, fields) => this.log.info(event, fields),
      onHello: async (hello, peerHostId) => {
        await this.claimPrimary(hello.relationshipId, peerHostId);
        await this.rememberVm(hello.relationshipId, hello.vmConfig);
      },
      ...(this.peer ? { peer: this.peer } : {}),
      retentionAtCommit: true,
      onPointCommitted: async ({ store, retentionHours }) => {
        try {
          const dropped = await store.applyRetention(retentionHours);
          if (dropped.length > 0)
            this.log.info('retention dropped points', { relationshipId: store.relationshipId, dropped });
        } catch (error) {
          // the point is committed and acknowledged; the points retention would drop are kept until
          // a later retention succeeds (a failed store refuses the next cycle, which reports it)
          this.log.warn('retention failed; points are kept until the next commit retries it', {
            relationshipId: store.relationshipId,
            error,
          });
        }
      },
    });
    this.port = (await this.receiver.start()).port;
  }

  /** Synchronous summary of the open stores, for metrics scrapes. */
  snapshot(): ReplicaSummary[] {
    return [...this.opened.values()].map(({ store }) => {
      const points = store.points();
      return {
        relationshipId: store.relationshipId,
        points: points.length,
        latestCutWallMs: points[points.length - 1]?.cutWallMs ?? null,
        epoch: store.epoch(),
        undo: store.undoStats(),
      };
    });
  }

  async list(): Promise<ReplicaView[]> {
    const views: ReplicaView[] = [];
    for (const id of [...this.stores.keys()].sort()) views.push(await this.get(id));
    return views;
  }

  async get(relationshipId: string): Promise<ReplicaView> {
    const { store, storageLocation } = await this.require(relationshipId);
    const points = store.points();
    const latest = points[points.length - 1] ?? null;
    return {
      relationshipId,
      storageLocation,
      epoch: store.epoch(),
      disks: store.disks(),
      points,
      latestPoint: latest,
      lagMs: latest ? Math.max(0, this.clock.wallMs() - latest.cutWallMs) : null,
      exports: [...this.exported.entries()]
        .filter(([k]) => k.startsWith(`${relationshipId}/`))
        .flatMap(([, v]) => v.names),
      undo: store.undoStats(),
    };
  }

  /**
   * The VM definition (without disks) the primary sent in its HELLO, or null when it sent none: what a
   * failover starts here. Kept in `<stateDir>/replica-vms/<relationshipId>.json`.
   */
  async vmTemplate(relationshipId: string): Promise<VmTemplate | null> {
    const raw = await readWholeFile(this.storage, this.vmFile(relationshipId));
    if (!raw) return null;
    const parsed = vmTemplateSchema.safeParse(JSON.parse(raw.toString('utf8')));
    return parsed.success ? parsed.data : null;
  }

  private vmFile(relationshipId: string): string {
    return join(this.config.stateDir, 'replica-vms', `${relationshipId}.json`);
  }

  private primaryFile(relationshipId: string): string {
    return join(this.config.stateDir, 'replica-vms', `${relationshipId}.primary`);
  }

  /**
   * The host that replicates into this relationship (authenticated by its certificate at its last
   * HELLO), or null when none ever did (a seeded or imported replica with no cycle yet). The peer API
   * lets only this host act on the relationship.
   */
  async primaryOf(relationshipId: string): Promise<string | null> {
    const raw = await readWholeFile(this.storage, this.primaryFile(relationshipId));
    return raw ? raw.toString('utf8').trim() || null : null;
  }

  /**
   * The first primary to replicate into a relationship (after its store was made, seeded or imported)
   * is its primary from then on: a HELLO from another host, even one authorized for the storage
   * location, is refused, so it can neither feed the replica nor act on it through the peer API.
   */
  private async claimPrimary(relationshipId: string, hostId: string): Promise<void> {
    const recorded = await this.primaryOf(relationshipId);
    if (recorded === hostId) return;
    if (recorded !== null) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_PEER_NOT_AUTHORIZED',
        `relationship '${relationshipId}' already replicates into this host from another primary; a relationship has one primary (delete the replica on this host to start over)`,
        { relationshipId, primaryHostId: hostId },
      );
    }
    await this.storage.mkdir(join(this.config.stateDir, 'replica-vms'));
    await replaceFileAtomically(this.storage, this.primaryFile(relationshipId), Buffer.from(`${hostId}\n`));
  }

  /** A seeded or imported replica starts a new generation: its first HELLO names its primary. */
  private async forgetPrimary(relationshipId: string): Promise<void> {
    if (await this.storage.exists(this.primaryFile(relationshipId)))
      await this.storage.unlink(this.primaryFile(relationshipId));
  }

  private async rememberVm(relationshipId: string, vmConfig: string): Promise<void> {
    if (vmConfig === '' || this.vmConfigs.get(relationshipId) === vmConfig) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(vmConfig);
    } catch {
      parsed = null;
    }
    const template = vmTemplateSchema.safeParse(parsed);
    if (!template.success) {
      this.log.warn('the primary sent a VM definition this host cannot use; failover will need one', {
        relationshipId,
      });
      return;
    }
    await this.storage.mkdir(join(this.config.stateDir, 'replica-vms'));
    await replaceFileAtomically(
      this.storage,
      this.vmFile(relationshipId),
      Buffer.from(`${JSON.stringify(template.data, null, 2)}\n`),
    );
    this.vmConfigs.set(relationshipId, vmConfig);
  }

  /**
   * Reverse replication, on the old primary: seeds the relationship's store in `storageLocation` from
   * the given images (moved in, no copy) at `epoch`, and opens it for the new primary's cycles.
   */
  async seed(
    relationshipId: string,
    storageLocation: string,
    epoch: number,
    images: ReadonlyArray<{ diskId: string; sourcePath: string; sizeBytes: number }>,
  ): Promise<ReplicaView> {
    const storageDir = this.config.replication.storageLocations[storageLocation];
    if (!storageDir) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `no storage location '${storageLocation}' on this host`,
        {
          storageLocation,
        },
      );
    }
    const open = this.opened.get(relationshipId);
    if (!open || open.store.points().length === 0) await this.forgetPrimary(relationshipId);
    if (open && open.store.points().length === 0) {
      // an empty store left by an interrupted seeding: close it, the seeding replaces its catalogue
      this.stores.delete(relationshipId);
      this.opened.delete(relationshipId);
      await open.store.close();
    }
    await seedStore(this.storage, storageDir, {
      format: 'secondsite-seed-1',
      relationshipId,
      epoch,
      cutWallMs: this.clock.wallMs(),
      images,
    });
    await this.open(relationshipId, storageLocation);
    this.log.info('replica seeded from local disks', {
      relationshipId,
      epoch,
      disks: images.map((i) => i.diskId),
    });
    return this.get(relationshipId);
  }

  /**
   * Deletes a replica and every recovery point of it (disable replication with "delete the replica").
   * Refused while a point is exported or `busy` says why (a test failover or failover in progress).
   * A primary still replicating would start a new initial replication: disable it there first.
   */
  async delete(relationshipId: string, busy: string | null): Promise<boolean> {
    if (!this.stores.has(relationshipId)) return false;
    if (busy !== null) throw new SecondsiteError('SECONDSITE_ERR_INVALID_STATE', busy, { relationshipId });
    const { store, storageLocation } = await this.require(relationshipId);
    const exported = [...this.exported.keys()].filter((k) => k.startsWith(`${relationshipId}/`));
    if (exported.length > 0) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `points of ${relationshipId} are exported (${exported.join(', ')}); unexport them first`,
        { relationshipId },
      );
    }
    this.stores.delete(relationshipId);
    this.opened.delete(relationshipId);
    await store.close();
    const dir = this.config.replication.storageLocations[storageLocation] as string;
    await this.storage.rename(join(dir, relationshipId), join(dir, `${relationshipId}.promoted`));
    await this.storage.syncDir(dir);
    await this.storage.removeTree(join(dir, `${relationshipId}.promoted`));
    for (const file of [this.vmFile(relationshipId), this.primaryFile(relationshipId)])
      if (await this.storage.exists(file)) await this.storage.unlink(file);
    this.vmConfigs.delete(relationshipId);
    this.log.info('replica deleted', { relationshipId });
    return true;
  }

  /**
   * Offline initial replication, step 2 (on the replica host): the images a 'disk export' wrote into
   * `fromDir` become the replica's seed (moved in: same file system). Then enable replication on the
   * primary with an existing copy: its first cycle sends only what differs.
   */
  async importImages(
    relationshipId: string,
    request: { fromDir: string; diskIds: readonly string[]; storageLocation: string },
  ): Promise<ReplicaView> {
    const images: Array<{ diskId: string; sourcePath: string; sizeBytes: number }> = [];
    for (const diskId of request.diskIds) {
      const sourcePath = join(request.fromDir, `${diskId}.raw`);
      if (!(await this.storage.exists(sourcePath))) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_NOT_FOUND',
          `no image ${sourcePath}; copy the files written by 'secondsite host disk export' there`,
          { diskId, path: sourcePath },
        );
      }
      const f = await this.storage.open(sourcePath, 'read');
      const sizeBytes = await f.sizeBytes().finally(() => f.close());
      images.push({ diskId, sourcePath, sizeBytes });
    }
    return this.seed(relationshipId, request.storageLocation, 0, images);
  }

  /** The store of a relationship (for failover and tests). */
  async store(relationshipId: string): Promise<ReplicaStore> {
    return (await this.require(relationshipId)).store;
  }

  /** The recovery-point store itself (views, promotion). */
  async pointStore(relationshipId: string): Promise<PointStore> {
    return (await this.require(relationshipId)).store;
  }

  /** True when this host keeps a replica of the relationship. */
  has(relationshipId: string): boolean {
    return this.stores.has(relationshipId);
  }

  /**
   * Failover commit: promotes a view of the relationship's store to plain disk images at `targets`
   * and forgets the relationship (the store is gone; its exports are removed first).
   */
  async promote(
    relationshipId: string,
    viewId: string,
    targets: Readonly<Record<string, string>>,
  ): Promise<void> {
    const { store } = await this.require(relationshipId);
    for (const key of [...this.exported.keys()]) {
      if (key.startsWith(`${relationshipId}/`))
        await this.unexportPoint(relationshipId, key.slice(relationshipId.length + 1));
    }
    await store.promoteView(viewId, targets);
    this.stores.delete(relationshipId);
    this.opened.delete(relationshipId);
  }

  /** Serves every disk of a point read-only over NBD. Exporting the same point again returns the same exports. */
  async exportPoint(relationshipId: string, pointId: string): Promise<PointExport> {
    const { store } = await this.require(relationshipId);
    // "latest" after a commit in progress that drops it (retention runs in the commit)
    const point = await store.resolvePoint(pointId);
    if (!point) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_RECOVERY_POINT_NOT_FOUND',
        `relationship '${relationshipId}' has no retained point '${pointId}'; list them with 'secondsite host replica points ${relationshipId}'`,
        { relationshipId, pointId },
      );
    }
    const key = `${relationshipId}/${point.pointId}`;
    if (!this.exported.has(key)) {
      const names: string[] = [];
      const readers: PointDiskReader[] = [];
      try {
        for (const disk of store.disks()) {
          const reader = await store.openPointDisk(point.pointId, disk.diskId);
          readers.push(reader);
          const name = `point/${relationshipId}/${point.pointId}/${disk.diskId}`;
          this.nbd.addExport(name, new PointBlockDevice(reader), {
            readOnly: true,
            description: `recovery point ${point.pointId}`,
          });
          names.push(name);
        }
      } catch (e) {
        for (const n of names) this.nbd.removeExport(n);
        for (const r of readers) await r.close();
        throw e;
      }
      this.exported.set(key, { names, readers });
      this.log.info('recovery point exported', { relationshipId, pointId: point.pointId, exports: names });
    }
    const entry = this.exported.get(key);
    return {
      relationshipId,
      pointId: point.pointId,
      disks: store.disks().map((d, i) => {
        const exportName = entry?.names[i] ?? '';
        return {
          diskId: d.diskId,
          exportName,
          nbdUri: `nbd+unix:///${exportName}?socket=${this.config.nbdSocket}`,
          sizeBytes: d.sizeBytes,
        };
      }),
    };
  }

  /** Stops serving a point (unpins it). Unexporting a point that is not exported is not an error. */
  async unexportPoint(relationshipId: string, pointId: string): Promise<boolean> {
    const key = `${relationshipId}/${pointId}`;
    const entry = this.exported.get(key);
    if (!entry) return false;
    this.exported.delete(key);
    for (const n of entry.names) this.nbd.removeExport(n);
    for (const r of entry.readers) await r.close();
    return true;
  }

  async close(): Promise<void> {
    await this.receiver?.stop();
    this.receiver = null;
    for (const key of [...this.exported.keys()]) {
      const [rel, point] = key.split('/');
      await this.unexportPoint(rel ?? '', point ?? '');
    }
    for (const p of this.stores.values()) await (await p).store.close();
    this.stores.clear();
    this.opened.clear();
  }

  private async require(relationshipId: string): Promise<OpenStore> {
    const s = this.stores.get(relationshipId);
    if (!s) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `this host holds no replica of '${relationshipId}'; list replicas with 'secondsite host replica list'`,
        { relationshipId },
      );
    }
    return s;
  }

  private open(relationshipId: string, storageLocation: string): Promise<OpenStore> {
    const current = this.opened.get(relationshipId);
    if (current && current.store.state === 'failed') {
      // A commit failed half way: reopen, which finishes or rolls back the interrupted commit.
      this.log.warn('reopening a failed replica store', { relationshipId });
      this.stores.delete(relationshipId);
      this.opened.delete(relationshipId);
      void current.store.close().catch(() => undefined);
    }
    let p = this.stores.get(relationshipId);
    if (!p) {
      const storageDir = this.config.replication.storageLocations[storageLocation];
      if (!storageDir) {
        return Promise.reject(
          new SecondsiteError(
            'SECONDSITE_ERR_NOT_FOUND',
            `no storage location '${storageLocation}' on this host`,
            {
              storageLocation,
            },
          ),
        );
      }
      p = PointStore.open({
        storage: this.storage,
        storageDir,
        relationshipId,
        clock: this.clock,
        onBackgroundError: (error) =>
          this.log.warn('undo compaction failed; it is retried after the next retention', {
            relationshipId,
            error,
          }),
      }).then((store) => ({ store, storageLocation }));
      void p.then((o) => this.opened.set(relationshipId, o)).catch(() => undefined);
      this.stores.set(relationshipId, p);
      p.catch(() => this.stores.delete(relationshipId));
    }
    return p;
  }
}

/** A retained point's disk as a read-only BlockDevice, for the NBD server. */
class PointBlockDevice implements BlockDevice {
  readonly readOnly = true;
  readonly sizeBytes: number;

  constructor(private readonly reader: PointDiskReader) {
    this.sizeBytes = reader.sizeBytes;
  }

  read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    return this.reader.read(offsetBytes, lengthBytes);
  }

  write(): Promise<void> {
    return Promise.reject(readOnlyError());
  }
  trim(): Promise<void> {
    return Promise.reject(readOnlyError());
  }
  writeZeroes(): Promise<void> {
    return Promise.reject(readOnlyError());
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }

  async extents(offsetBytes: number, lengthBytes: number): Promise<BlockExtent[]> {
    const a = await this.reader.allocation(offsetBytes, lengthBytes);
    return a.map((e) => ({
      offsetBytes: e.offsetBytes,
      lengthBytes: e.lengthBytes,
      hole: !e.data,
      zero: !e.data,
    }));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function readOnlyError(): SecondsiteError {
  return new SecondsiteError('SECONDSITE_ERR_FORBIDDEN', 'recovery point exports are read-only');
}

/**
 * One replication connection on the replica host, after TLS authenticated the peer and the
 * authorization list allowed its host id (replication-receiver.ts). Runs the receiver side of the
 * protocol in docs/design/replication.md: HELLO (authorize host + storage location, open the store,
 * fence by epoch) -> WELCOME, then cycles: CYCLE_BEGIN + PLAN -> CYCLE_READY (durable staged progress:
 * the resume token), DATA / ZERO staged through the CycleWriter (checksum verified after
 * decompression, before staging), SYNC -> ACK, CYCLE_END -> coverage and digest checks -> commit ->
 * POINT_COMMITTED. Any violation throws; the caller sends an ERROR frame and closes. Nothing is
 * committed unless every check passed.
 */
import { SecondsiteError, isSecondsiteError } from '../../domain/errors.js';
import { coalesce, covers, totalBytes } from '../../domain/replication/extent-set.js';
import type { ByteRange } from '../../domain/replication/extent-set.js';
import { FLAG_SYNC, relationshipKeyOf } from '../../protocol/replication/frame-codec.js';
import { PlanDigest, chunkChecksum, cycleDigestOf } from '../../protocol/replication/cycle-digest.js';
import { checkEpoch } from '../../protocol/replication/frame-rules.js';
import { MAX_EXTENTS_PER_FRAME } from '../../protocol/replication/messages.js';
import type { DiskExtent, MessageOf } from '../../protocol/replication/messages.js';
import type {
  CycleWriter,
  PointDiskReader,
  RecoveryPointInfo,
  ReplicaStore,
  StagedProgress,
} from '../recovery-points/replica-store.js';
import { decompressChunkAsync } from './chunk-compression.js';
import type { FrameConnection } from './frame-connection.js';
import { StagingPipeline } from './staging-pipeline.js';

export interface ReceiverSessionDeps {
  readonly replicaHostId: string;
  /** Authorizes the pair and opens (or returns the open) store; throws PEER_NOT_AUTHORIZED etc. */
  openStore(hello: MessageOf<'hello'>, peerHostId: string): Promise<ReplicaStore>;
  readonly frameTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  /** How long a connection may sit idle between cycles before the receiver closes it. */
  readonly idleTimeoutMs: number;
  /** Counters shared by all sessions of the receiver. */
  readonly counters: ReceiverCounters;
  /** Commits carry the HELLO's retention hours (the store applies retention in the commit). */
  readonly retentionAtCommit: boolean;
  /** True once this session was replaced or the receiver stops. */
  aborted(): boolean;
  /** Called once the HELLO is authorized and the store open (the replica keeps the VM definition). */
  /** After the store opened for a HELLO; `peerHostId` is the authenticated primary. */
  onHello?(hello: MessageOf<'hello'>, peerHostId: string): Promise<void>;
  /**
   * Called after each commit, once POINT_COMMITTED is sent (the replica applies retention here); the
   * session reads the next frame when it resolves.
   */
  onPointCommitted?(e: {
    store: ReplicaStore;
    point: RecoveryPointInfo;
    retentionHours: number;
  }): Promise<void>;
}

export interface ReceiverCounters {
  sessionsAccepted: number;
  sessionsRefused: number;
  dataFramesStaged: number;
  dataBytesStaged: number;
  zeroBytesStaged: number;
  pointsCommitted: number;
}

/**
 * A DATA frame's uncompressed bytes once its chunk SHA-256 matched (decompression on the libuv
 * threadpool; the hash in place, which costs less CPU than WebCrypto's copy of every chunk, see
 * chunk preparation in replication-sender.ts); rejects with BAD_FRAME otherwise (invariant 2).
 */
async function verifiedChunk(m: MessageOf<'data'>): Promise<Buffer> {
  const data = m.compression === 'lz4' ? await decompressChunkAsync(m.body, m.lengthBytes) : m.body;
  if (!chunkChecksum(data).equals(m.dataChecksum)) {
    throw badFrame(`data chunk at ${m.offsetBytes}+${m.lengthBytes}: checksum mismatch after decompression`);
  }
  return data;
}

/** Relationship ids name directories on the replica: plain names only (checked again by the store). */
const RELATIONSHIP_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function protocolError(message: string): SecondsiteError {
  return new SecondsiteError('SECONDSITE_ERR_PROTOCOL', message);
}

function badFrame(message: string, details: Record<string, unknown> = {}): SecondsiteError {
  return new SecondsiteError('SECONDSITE_ERR_BAD_FRAME', message, details);
}

export class ReceiverSession {
  private store: ReplicaStore | null = null;
  private retentionHours = 0;
  private disks: ReadonlyArray<{ diskId: string; sizeBytes: number }> = [];
  relationshipId: string | null = null;

  constructor(
    private readonly conn: FrameConnection,
    private readonly peerHostId: string,
    private readonly deps: ReceiverSessionDeps,
  ) {}

  /** Runs until the peer leaves or an error is thrown. */
  async run(): Promise<void> {
    const { frame, message: hello } = await this.conn.expect('hello', this.deps.handshakeTimeoutMs);
    if (hello.primaryHostId !== this.peerHostId) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_UNAUTHORIZED',
        `HELLO names primary host '${hello.primaryHostId}' but the TLS certificate is '${this.peerHostId}'`,
        { primaryHostId: hello.primaryHostId, certificateHostId: this.peerHostId },
      );
    }
    if (!RELATIONSHIP_ID_RE.test(hello.relationshipId) || hello.relationshipId.includes('..')) {
      // the id names the relationship's directory in the store: refuse anything but a plain name
      throw new SecondsiteError(
        'SECONDSITE_ERR_UNSAFE_PATH',
        `relationship id '${hello.relationshipId.slice(0, 64)}' is not a plain name (letters, digits, '.', '_', '-')`,
      );
    }
    const key = relationshipKeyOf(hello.relationshipId);
    if (!key.equals(frame.header.relationshipKey))
      throw badFrame('HELLO header relationship key does not match its id');
    this.relationshipId = hello.relationshipId;
    this.retentionHours = hello.retentionHours;
    const store = await this.deps.openStore(hello, this.peerHostId);
    this.store = store;
    // the epoch first: a fenced old primary's HELLO changes nothing the replica keeps
    checkEpoch(frame.header.epoch, store.epoch(), 'sender');
    await this.deps.onHello?.(hello, this.peerHostId);
    for (const d of hello.disks) await store.ensureDisk(d.diskId, d.sizeBytes);
    this.disks = hello.disks;
    this.conn.peer.relationshipKey = key;
    this.conn.peer.epoch = store.epoch();
    this.conn.peer.disks = hello.disks;
    this.conn.own = { relationshipKey: key, epoch: store.epoch() };
    const last = store.points().at(-1);
    await this.conn.send({
      kind: 'welcome',
      replicaHostId: this.deps.replicaHostId,
      epoch: store.epoch(),
      lastPoint: last
        ? { pointId: last.pointId, sequence: last.sequence, cycleId: last.cycleId, cutWallMs: last.cutWallMs }
        : null,
    });
    this.deps.counters.sessionsAccepted++;
    for (;;) {
      let next;
      try {
        next = await this.conn.next(this.deps.idleTimeoutMs);
      } catch (e) {
        // a goodbye or a long idle period between cycles is not an error: the sender reconnects
        if (
          isSecondsiteError(e, 'SECONDSITE_ERR_CONNECTION_LOST') ||
          isSecondsiteError(e, 'SECONDSITE_ERR_TIMEOUT')
        ) {
          return;
        }
        throw e;
      }
      if (this.deps.aborted()) return;
      this.fence(next.header.epoch);
      if (next.message.kind !== 'cycle-begin')
        throw protocolError(`expected cycle-begin, got ${next.message.kind}`);
      await this.cycle(next.message);
    }
  }

  /** The store's epoch may rise during a session (failover): check every frame against it. */
  private fence(frameEpoch: number): void {
    const store = this.store as ReplicaStore;
    checkEpoch(frameEpoch, store.epoch(), 'sender');
  }

  private diskIndexOf(diskId: string): number {
    return this.disks.findIndex((d) => d.diskId === diskId);
  }

  private async cycle(begin: MessageOf<'cycle-begin'>): Promise<void> {
    const store = this.store as ReplicaStore;
    const t = this.deps.frameTimeoutMs;
    // 1. the plan, checked against its digest
    const digest = new PlanDigest();
    const planByDisk: ByteRange[][] = this.disks.map(() => []);
    while (digest.count < begin.planExtentCount) {
      const { frame, message } = await this.conn.expect('plan', t);
      this.fence(frame.header.epoch);
      if (digest.count + message.extents.length > begin.planExtentCount) {
        throw badFrame(`plan has more extents than the ${begin.planExtentCount} announced`);
      }
      for (const e of message.extents) {
        digest.add(e);
        (planByDisk[e.diskIndex] as ByteRange[]).push(e);
      }
    }
    if (!digest.digest().equals(begin.planDigest))
      throw badFrame('plan digest mismatch: plan frames were altered');
    const plan = planByDisk.map((r) => coalesce(r));

    // 2. idempotence: a cycle that is already a point is acknowledged again, never applied twice
    const existing = store.points().find((p) => p.cycleId === begin.cycleId);
    if (existing) {
      await this.sendCommitted(existing);
      return;
    }

    // 3. open (or reopen) staging, adopting an earlier cycle's staging that lies inside this plan
    //    (a restarted sender), and report durable progress: own ranges are skipped, adopted ones are
    //    compared by digest
    const adoptWithin: Record<string, ByteRange[]> = {};
    plan.forEach((ranges, i) => (adoptWithin[this.diskIdAt(i)] = ranges));
    const writer = await store.beginCycle(begin.cycleId, store.epoch(), { adoptWithin });
    const progress = await writer.sync();
    const staged = this.extentsOf(progress.staged);
    const adopted = this.extentsOf(writer.adopted());
    const digestsAllowed = begin.mode === 'resync' || adopted.length > 0;
    const pages = Math.max(1, Math.ceil(Math.max(staged.length, adopted.length) / MAX_EXTENTS_PER_FRAME));
    for (let page = 0; page < pages; page++) {
      const from = page * MAX_EXTENTS_PER_FRAME;
      await this.conn.send({
        kind: 'cycle-ready',
        cycleId: begin.cycleId,
        staged: staged.slice(from, from + MAX_EXTENTS_PER_FRAME),
        adopted: adopted.slice(from, from + MAX_EXTENTS_PER_FRAME),
        last: page === pages - 1,
      });
    }

    // 4. chunks until CYCLE_END; writes and syncs run while the next frames are read (staging-pipeline.ts)
    const verified: ByteRange[][] = this.disks.map(() => []);
    const readers = new Map<string, PointDiskReader | null>();
    const staging = new StagingPipeline(
      writer,
      (seq, progress) => this.sendAck(seq, progress),
      (e) => this.conn.fail(e),
    );
    try {
      for (;;) {
        const { header, message: m } = await this.conn.next(t);
        if (this.deps.aborted()) return;
        this.fence(header.epoch);
        switch (m.kind) {
          case 'data': {
            this.checkInPlan(plan, m);
            const diskId = this.diskIdAt(m.diskIndex);
            const ackSeq = header.flags & FLAG_SYNC ? header.seq : undefined;
            // checked (decompression, SHA-256) on the threadpool; staged only if the check passed
            await staging.stage(
              verifiedChunk(m),
              async (w, data) => {
                await w.writeChunk(diskId, m.offsetBytes, data, m.dataChecksum); // verified above
                this.deps.counters.dataFramesStaged++;
                this.deps.counters.dataBytesStaged += m.lengthBytes;
              },
              ackSeq,
            );
            break;
          }
          case 'zero': {
            this.checkInPlan(plan, m);
            const diskId = this.diskIdAt(m.diskIndex);
            const ackSeq = header.flags & FLAG_SYNC ? header.seq : undefined;
            await staging.stage(
              null,
              async (w) => {
                await w.zeroRange(diskId, m.offsetBytes, m.lengthBytes);
                this.deps.counters.zeroBytesStaged += m.lengthBytes;
              },
              ackSeq,
            );
            break;
          }
          case 'digests':
            if (!digestsAllowed)
              throw protocolError('digests are only exchanged in resync cycles or for adopted ranges');
            await staging.drain();
            await this.compareDigests(m, plan, verified, readers, writer);
            break;
          case 'cycle-end':
            await staging.drain();
            await this.endCycle(begin, m, writer, plan, verified);
            return;
          default:
            throw protocolError(`unexpected ${m.kind} frame during a cycle`);
        }
      }
    } finally {
      await staging.drain().catch(() => undefined); // the error, if any, is already thrown or reported
      for (const r of readers.values()) if (r) await r.close();
    }
  }

  /** Per-disk-id ranges as extents of this session's disk indexes (disks not in the session dropped). */
  private extentsOf(byDiskId: StagedProgress['staged']): DiskExtent[] {
    const out: DiskExtent[] = [];
    for (const [diskId, ranges] of Object.entries(byDiskId)) {
      const diskIndex = this.diskIndexOf(diskId);
      if (diskIndex < 0) continue;
      for (const r of ranges) out.push({ diskIndex, offsetBytes: r.offsetBytes, lengthBytes: r.lengthBytes });
    }
    return out;
  }

  private diskIdAt(diskIndex: number): string {
    return (this.disks[diskIndex] as { diskId: string }).diskId;
  }

  private checkInPlan(plan: ByteRange[][], e: DiskExtent): void {
    if (!covers(plan[e.diskIndex] ?? [], e.offsetBytes, e.lengthBytes)) {
      throw badFrame(
        `chunk ${e.offsetBytes}+${e.lengthBytes} of disk '${this.diskIdAt(e.diskIndex)}' is outside the cycle's plan`,
      );
    }
  }

  /** ACK for `seq`, sent only after a sync that covered it returned `progress`. */
  private async sendAck(seq: number, progress: StagedProgress): Promise<void> {
    let stagedBytes = 0;
    for (const ranges of Object.values(progress.staged)) stagedBytes += totalBytes(ranges);
    await this.conn.send({ kind: 'ack', ackedSeq: seq, stagedBytes });
  }

  private async compareDigests(
    m: MessageOf<'digests'>,
    plan: ByteRange[][],
    verified: ByteRange[][],
    readers: Map<string, PointDiskReader | null>,
    writer: CycleWriter,
  ): Promise<void> {
    const store = this.store as ReplicaStore;
    const last = store.points().at(-1);
    const differs: boolean[] = [];
    for (const c of m.chunks) {
      this.checkInPlan(plan, c);
      const diskId = this.diskIdAt(c.diskIndex);
      let reader = readers.get(diskId);
      if (reader === undefined) {
        reader = last ? await store.openPointDisk(last.pointId, diskId).catch(() => null) : null;
        readers.set(diskId, reader);
      }
      // compared with what a commit would produce: the latest point (zeros on a replica with no
      // point yet: its images are fresh sparse files) overlaid with every durable staged record
      let base: Buffer | null = null;
      if (reader && c.offsetBytes + c.lengthBytes <= reader.sizeBytes) {
        base = await reader.read(c.offsetBytes, c.lengthBytes);
      } else if (!last) {
        base = Buffer.alloc(c.lengthBytes);
      }
      let same = false;
      if (base) {
        await writer.overlayStaged(diskId, c.offsetBytes, base);
        same = chunkChecksum(base).equals(c.digest);
      }
      if (same)
        (verified[c.diskIndex] as ByteRange[]).push({
          offsetBytes: c.offsetBytes,
          lengthBytes: c.lengthBytes,
        });
      differs.push(!same);
    }
    await this.conn.send({ kind: 'diff', count: differs.length, differs });
  }

  private async endCycle(
    begin: MessageOf<'cycle-begin'>,
    end: MessageOf<'cycle-end'>,
    writer: CycleWriter,
    plan: ByteRange[][],
    verified: ByteRange[][],
  ): Promise<void> {
    if (
      end.cycleId !== begin.cycleId ||
      end.cutWallMs !== begin.cutWallMs ||
      end.consistency !== begin.consistency
    ) {
      throw badFrame('cycle-end does not match cycle-begin (id, cut time or consistency)');
    }
    const expected = cycleDigestOf({
      cycleId: begin.cycleId,
      cutWallMs: begin.cutWallMs,
      consistency: begin.consistency,
      planDigest: begin.planDigest,
    });
    if (!expected.equals(end.cycleDigest)) throw badFrame('cycle digest mismatch');
    const progress = await writer.sync();
    for (let i = 0; i < this.disks.length; i++) {
      const diskId = this.diskIdAt(i);
      const have = coalesce([...(progress.staged[diskId] ?? []), ...(verified[i] ?? [])]);
      for (const e of plan[i] ?? []) {
        if (!covers(have, e.offsetBytes, e.lengthBytes)) {
          throw protocolError(
            `cycle ${begin.cycleId} ended but disk '${diskId}' range ${e.offsetBytes}+${e.lengthBytes} was not fully received; nothing committed`,
          );
        }
      }
    }
    const point = await writer.commit({
      cutWallMs: begin.cutWallMs,
      consistency: begin.consistency,
      ...(this.deps.retentionAtCommit ? { retentionHours: this.retentionHours } : {}),
    });
    this.deps.counters.pointsCommitted++;
    // acknowledged first: the sender's lag ends at the commit, not after retention
    await this.sendCommitted(point);
    if (this.store)
      await this.deps.onPointCommitted?.({ store: this.store, point, retentionHours: this.retentionHours });
  }

  /** Sent even if a later frame already failed the connection: the point exists, the sender should know. */
  private async sendCommitted(p: RecoveryPointInfo): Promise<void> {
    const evenIfFailed = true;
    await this.conn.send(
      {
        kind: 'point-committed',
        pointId: p.pointId,
        sequence: p.sequence,
        cycleId: p.cycleId,
        cutWallMs: p.cutWallMs,
        committedWallMs: p.committedWallMs,
      },
      0,
      evenIfFailed,
    );
  }
}

/**
 * The primary host's replication sender: ships one cycle (the `CycleSnapshot`s of all disks of a VM,
 * cut together) to the replica and returns when the replica committed it as a recovery point, then
 * calls `complete()` on every snapshot. Phases and invariants: docs/design/replication.md.
 *
 *   plan   incremental: the changed extents; full (resyncRequired, or the replica has no point yet):
 *          the whole disk, holes from `allocation()` become ZERO frames.
 *   resume after CYCLE_READY, chunks the replica already staged durably are skipped, so a reconnect
 *          re-sends at most the in-flight window plus one chunk.
 *   resync for disks with `resyncRequired` when the replica has a point: per-chunk SHA-256 digests
 *          are compared first and only differing chunks are sent.
 *   send   all-zero chunks go as ZERO frames (never compressed, never data on the wire); others are
 *          LZ4-compressed when it pays, checksummed, rate-limited, at most `windowChunks` unacked.
 *   commit CYCLE_END, wait for POINT_COMMITTED, `complete()` every snapshot.
 *
 * Transient failures reconnect with backoff (same cycle id = resume token); permanent ones (and giving
 * up after `maxAttempts`) `abandon()` the snapshots, so the frozen changes go into the next cut.
 */
import { connect } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import type { Clock } from '../../domain/clock.js';
import { SecondsiteError, isSecondsiteError } from '../../domain/errors.js';
import type { Rng } from '../../domain/random.js';
import { DEFAULT_BACKOFF, backoffDelayMs } from '../../domain/replication/backoff.js';
import type { BackoffPolicy } from '../../domain/replication/backoff.js';
import { coalesce, coarsen, covers, splitAligned, subtract } from '../../domain/replication/extent-set.js';
import type { ByteRange } from '../../domain/replication/extent-set.js';
import { newRelationshipStats, recordCycle } from '../../domain/replication/relationship-stats.js';
import { senderTransition } from '../../domain/replication/sender-state.machine.js';
import type { SenderState } from '../../domain/replication/sender-state.machine.js';
import type { RelationshipStats } from '../../domain/replication/relationship-stats.js';
import { chunkChecksum, cycleDigestOf, planDigestOf } from '../../protocol/replication/cycle-digest.js';
import { FLAG_SYNC, relationshipKeyOf } from '../../protocol/replication/frame-codec.js';
import { newSessionContext } from '../../protocol/replication/frame-rules.js';
import {
  MAX_CHUNK_BYTES,
  MAX_EXTENTS_PER_FRAME,
  MAX_PLAN_EXTENTS,
} from '../../protocol/replication/messages.js';
import type {
  Compression,
  Consistency,
  DiskExtent,
  MessageKind,
  MessageOf,
} from '../../protocol/replication/messages.js';
import type { CycleSnapshot } from '../change-tracking/cycle-snapshot.js';
import { replicationClientOptions } from '../pki/tls-config.js';
import type { TlsIdentity } from '../pki/tls-config.js';
import { compressChunkAsync, isAllZero } from './chunk-compression.js';
import { FrameConnection, socketError } from './frame-connection.js';
import { TokenBucket } from './token-bucket.js';

/** Chunks read ahead of the one being sent (bounded memory: this many chunks per relationship). */
const READ_AHEAD_CHUNKS = 8;

/** Hourly points kept besides the latest when the relationship does not say. */
export const DEFAULT_RETENTION_HOURS = 24;

export interface SenderPolicy {
  /** LZ4 when it pays (default true). */
  readonly compression: boolean;
  /** Wire bytes per second; undefined = unlimited. */
  readonly bandwidthBytesPerSec: number | undefined;
  /** Chunk size (default 1 MiB, at most 16 MiB). */
  readonly chunkBytes: number;
  /**
   * Unacknowledged DATA bytes allowed, in chunks: the window is windowChunks x chunkBytes (default 64,
   * so the replica syncs every 32 MiB: with 16 a 512 MiB initial copy spent ~10 % longer waiting on
   * its 64 syncs, docs/benchmarks.md), capped at MAX_WINDOW_BYTES. A resume re-sends at most the
   * window plus one chunk.
   */
  readonly windowChunks: number;
  /** Resync digests per DIGESTS frame (default 16). */
  readonly digestBatch: number;
  readonly frameTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly backoff: BackoffPolicy;
  /** Transient failures tolerated per cycle before giving up (default 8). */
  readonly maxAttempts: number;
  /** A connection idle longer than this is not reused for the next cycle (default 60 s; the receiver
   * closes idle connections after 120 s). */
  readonly idleReuseMs: number;
}

export const DEFAULT_SENDER_POLICY: SenderPolicy = Object.freeze({
  compression: true,
  bandwidthBytesPerSec: undefined,
  chunkBytes: 1024 * 1024,
  windowChunks: 64,
  digestBatch: 16,
  frameTimeoutMs: 30_000,
  connectTimeoutMs: 10_000,
  backoff: DEFAULT_BACKOFF,
  maxAttempts: 8,
  idleReuseMs: 60_000,
});

export interface SenderConfig {
  readonly tls: TlsIdentity;
  readonly replica: { readonly host: string; readonly port: number; readonly hostId: string };
  readonly relationship: {
    readonly relationshipId: string;
    readonly epoch: number;
    readonly storageLocation: string;
    /** Hourly recovery points the replica keeps besides the latest (the policy's retention). */
    readonly retentionHours?: number;
    /**
     * The VM's definition without its disks, as JSON (sent in HELLO so the replica can start the VM on
     * failover); read at every connect, and a change makes the next cycle reconnect.
     */
    readonly vmConfig?: () => string;
  };
  readonly policy?: Partial<SenderPolicy>;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Counters for the report; created if not given. */
  readonly stats?: RelationshipStats;
}

export interface CycleToShip {
  readonly cycleId: string;
  readonly cutWallMs: number;
  readonly consistency: Consistency;
  /** One per disk of the VM, in a stable order. */
  readonly snapshots: readonly CycleSnapshot[];
}

export interface CycleResult {
  readonly point: { pointId: string; sequence: number; cutWallMs: number; committedWallMs: number };
  readonly attempts: number;
  readonly logicalBytesSent: number;
  readonly wireBytesSent: number;
  readonly zeroBytes: number;
  /** DATA bytes sent more than once because of reconnects. */
  readonly resentBytes: number;
  /** Chunks found equal by digest in resync (not sent). */
  readonly chunksSkippedByDigest: number;
}

/** One unit of work: a data chunk (read, maybe zero) or a known hole (ZERO frame). */
interface WorkItem extends DiskExtent {
  readonly hole: boolean;
  readonly digestFirst: boolean;
}

interface Plan {
  readonly extents: DiskExtent[];
  readonly items: WorkItem[];
  readonly mode: 'incremental' | 'resync';
}

interface CycleState {
  plan: Plan | null;
  /** "disk:offset" of DATA chunks sent in any attempt of this cycle. */
  sent: Set<string>;
  logical: number;
  wire: number;
  zero: number;
  resent: number;
  skippedByDigest: number;
}

/** A sleep that `stop()` cuts short. */
function stoppableSleep(signal: AbortSignal): (ms: number) => Promise<void> {
  return (ms) =>
    new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done);
    });
}

export class ReplicationSender {
  readonly policy: SenderPolicy;
  readonly stats: RelationshipStats;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly bucket: TokenBucket | null;
  private readonly key: Buffer;
  private conn: FrameConnection | null = null;
  private connDisks = '';
  private connVmConfig = '';
  private connLastUsedMs = 0;
  private replicaHasPoint = false;
  private stopped = false;
  private readonly stopSignal = new AbortController();

  constructor(private readonly config: SenderConfig) {
    this.policy = { ...DEFAULT_SENDER_POLICY, ...config.policy };
    const p = this.policy;
    if (!Number.isSafeInteger(p.chunkBytes) || p.chunkBytes < 4096 || p.chunkBytes > MAX_CHUNK_BYTES) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `chunkBytes must be 4096..${MAX_CHUNK_BYTES}`,
      );
    }
    if (!Number.isSafeInteger(p.windowChunks) || p.windowChunks < 1 || p.windowChunks > 1024) {
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'windowChunks must be 1..1024');
    }
    this.sleep = config.sleep ?? stoppableSleep(this.stopSignal.signal);
    this.stats = config.stats ?? newRelationshipStats(config.relationship.relationshipId, 0);
    this.bucket =
      p.bandwidthBytesPerSec !== undefined
        ? new TokenBucket(
            p.bandwidthBytesPerSec,
            Math.max(p.chunkBytes, p.bandwidthBytesPerSec / 20),
            config.clock,
            this.sleep,
          )
        : null;
    this.key = relationshipKeyOf(config.relationship.relationshipId);
  }

  /** Closes the connection; a running `shipCycle` fails with a permanent error at its next step. */
  stop(): void {
    this.stopped = true;
    this.stopSignal.abort();
    this.stats.state = senderTransition(this.stats.state, 'stopped');
    this.conn?.destroy();
    this.conn = null;
  }

  /** Guarded state change (sender-state.machine.ts); once stopped, the state stays stopped. */
  private setState(to: SenderState): void {
    if (this.stats.state === 'stopped') return;
    this.stats.state = senderTransition(this.stats.state, to);
  }

  /** Closes the connection but stays usable (the next cycle reconnects). */
  disconnect(): void {
    this.conn?.close();
    this.conn = null;
  }

  /** Ships one cycle until the replica committed it. Throws (after abandoning the snapshots) on failure. */
  async shipCycle(cycle: CycleToShip): Promise<CycleResult> {
    const st: CycleState = {
      plan: null,
      sent: new Set(),
      logical: 0,
      wire: 0,
      zero: 0,
      resent: 0,
      skippedByDigest: 0,
    };
    const startedMs = this.config.clock.monotonicMs();
    let attempts = 0;
    this.stats.resyncRequired = cycle.snapshots.some((s) => s.resyncRequired);
    for (;;) {
      attempts++;
      try {
        if (this.stopped) throw new SecondsiteError('SECONDSITE_ERR_INVALID_STATE', 'the sender was stopped');
        const point = await this.attempt(cycle, st);
        this.replicaHasPoint = true;
        for (const s of cycle.snapshots) await s.complete();
        const durationMs = this.config.clock.monotonicMs() - startedMs;
        this.setState('idle');
        this.stats.lastPoint = point;
        this.stats.lastSuccessWallMs = this.config.clock.wallMs();
        this.stats.lastCycleLogicalBytes = st.logical;
        this.stats.lastCycleDurationMs = durationMs;
        recordCycle(this.stats, st.logical, durationMs);
        this.stats.consecutivePermanentErrors = 0;
        this.stats.resyncRequired = false;
        this.stats.currentCycle = null;
        return {
          point,
          attempts,
          logicalBytesSent: st.logical,
          wireBytesSent: st.wire,
          zeroBytes: st.zero,
          resentBytes: st.resent,
          chunksSkippedByDigest: st.skippedByDigest,
        };
      } catch (e) {
        this.conn?.destroy();
        this.conn = null;
        const err = isSecondsiteError(e)
          ? e
          : e instanceof Error
            ? socketError(e)
            : new SecondsiteError('SECONDSITE_ERR_INTERNAL', String(e));
        this.stats.lastError = {
          code: err.code,
          message: err.message,
          retry: err.retry,
          atWallMs: this.config.clock.wallMs(),
        };
        if (err.retry === 'permanent' || attempts >= this.policy.maxAttempts || this.stopped) {
          if (err.retry === 'permanent') this.stats.consecutivePermanentErrors++;
          this.setState('failed');
          this.stats.currentCycle = null;
          for (const s of cycle.snapshots) await s.abandon();
          throw err;
        }
        this.setState('backoff');
        await this.sleep(backoffDelayMs(this.policy.backoff, attempts, this.config.rng.next()));
      }
    }
  }

  private async connect(snapshots: readonly CycleSnapshot[]): Promise<FrameConnection> {
    const disksKey = snapshots.map((s) => `${s.diskId}:${s.sizeBytes}`).join(',');
    const idleMs = this.config.clock.monotonicMs() - this.connLastUsedMs;
    const vmConfig = this.config.relationship.vmConfig?.() ?? '';
    if (
      this.conn &&
      !this.conn.failed &&
      this.connDisks === disksKey &&
      this.connVmConfig === vmConfig &&
      idleMs < this.policy.idleReuseMs
    ) {
      return this.conn;
    }
    this.conn?.close();
    this.conn = null;
    this.setState('connecting');
    const { replica, relationship, tls } = this.config;
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = connect({
        host: replica.host,
        port: replica.port,
        ...replicationClientOptions(tls, replica.hostId),
      });
      const timer = setTimeout(() => {
        s.destroy();
        reject(
          new SecondsiteError(
            'SECONDSITE_ERR_TIMEOUT',
            `TLS connection to ${replica.hostId} (${replica.host}:${replica.port}) timed out`,
          ),
        );
      }, this.policy.connectTimeoutMs);
      s.once('secureConnect', () => {
        clearTimeout(timer);
        s.off('error', onError);
        resolve(s);
      });
      const onError = (e: Error): void => {
        clearTimeout(timer);
        reject(socketError(e));
      };
      s.once('error', onError);
    });
    socket.setNoDelay(true);
    const peer = newSessionContext('receiver');
    peer.relationshipKey = this.key;
    peer.epoch = relationship.epoch;
    const conn = new FrameConnection(socket, peer, { relationshipKey: this.key, epoch: relationship.epoch });
    peer.disks = snapshots.map((s) => ({ diskId: s.diskId, sizeBytes: s.sizeBytes }));
    try {
      await conn.send({
        kind: 'hello',
        primaryHostId: tls.hostId,
        relationshipId: relationship.relationshipId,
        storageLocation: relationship.storageLocation,
        disks: peer.disks.map((d) => ({ ...d })),
        retentionHours: relationship.retentionHours ?? DEFAULT_RETENTION_HOURS,
        vmConfig,
      });
      const { message: welcome } = await conn.expect('welcome', this.policy.frameTimeoutMs);
      if (welcome.replicaHostId !== replica.hostId) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_UNAUTHORIZED',
          `WELCOME names '${welcome.replicaHostId}', expected '${replica.hostId}'`,
        );
      }
      this.replicaHasPoint = welcome.lastPoint !== null;
    } catch (e) {
      conn.destroy();
      throw e;
    }
    this.conn = conn;
    this.connDisks = disksKey;
    this.connVmConfig = vmConfig;
    return conn;
  }

  private async buildPlan(snapshots: readonly CycleSnapshot[]): Promise<Plan> {
    const extents: DiskExtent[] = [];
    const items: WorkItem[] = [];
    let mode: Plan['mode'] = 'incremental';
    const chunk = this.policy.chunkBytes;
    const perDiskCap = Math.max(1, Math.floor(MAX_PLAN_EXTENTS / Math.max(1, snapshots.length)));
    for (let diskIndex = 0; diskIndex < snapshots.length; diskIndex++) {
      const s = snapshots[diskIndex] as CycleSnapshot;
      const full = s.resyncRequired || !this.replicaHasPoint;
      if (!full) {
        const changed = coarsen(coalesce(s.changedExtents()), perDiskCap);
        for (const r of changed) extents.push({ diskIndex, ...r });
        for (const r of splitAligned(changed, chunk))
          items.push({ diskIndex, ...r, hole: false, digestFirst: false });
        continue;
      }
      if (s.sizeBytes === 0) continue;
      const digestFirst = s.resyncRequired && this.replicaHasPoint;
      if (digestFirst) mode = 'resync';
      extents.push({ diskIndex, offsetBytes: 0, lengthBytes: s.sizeBytes });
      const alloc = await s.allocation(0, s.sizeBytes);
      const holes = coalesce(alloc.filter((a) => !a.data));
      const data = subtract([{ offsetBytes: 0, lengthBytes: s.sizeBytes }], holes);
      for (const h of holes) items.push({ diskIndex, ...h, hole: true, digestFirst: false });
      for (const r of splitAligned(data, chunk)) items.push({ diskIndex, ...r, hole: false, digestFirst });
    }
    items.sort((a, b) => a.diskIndex - b.diskIndex || a.offsetBytes - b.offsetBytes);
    return { extents, items, mode };
  }

  private async attempt(cycle: CycleToShip, st: CycleState): Promise<CycleResult['point']> {
    const conn = await this.connect(cycle.snapshots);
    const wireAtStart = conn.wireBytesSent;
    try {
      return await this.attemptOn(conn, cycle, st);
    } finally {
      this.connLastUsedMs = this.config.clock.monotonicMs();
      st.wire += conn.wireBytesSent - wireAtStart;
      this.stats.wireBytesSent += conn.wireBytesSent - wireAtStart;
    }
  }

  private async attemptOn(
    conn: FrameConnection,
    cycle: CycleToShip,
    st: CycleState,
  ): Promise<CycleResult['point']> {
    const t = this.policy.frameTimeoutMs;
    st.plan ??= await this.buildPlan(cycle.snapshots);
    const plan = st.plan;
    this.setState('shipping');
    const planDigest = planDigestOf(plan.extents);
    await conn.send({
      kind: 'cycle-begin',
      cycleId: cycle.cycleId,
      cutWallMs: cycle.cutWallMs,
      consistency: cycle.consistency,
      mode: plan.mode,
      planExtentCount: plan.extents.length,
      planDigest,
    });
    for (let i = 0; i < plan.extents.length; i += MAX_EXTENTS_PER_FRAME) {
      await conn.send({ kind: 'plan', extents: plan.extents.slice(i, i + MAX_EXTENTS_PER_FRAME) });
    }
    // durable progress of this cycle on the replica (or: it is already a point), and what it adopted
    // from an earlier cycle's staging (compared by digest, docs/design/replication.md)
    const staged: ByteRange[][] = cycle.snapshots.map(() => []);
    const adopted: ByteRange[][] = cycle.snapshots.map(() => []);
    for (;;) {
      const f = await conn.next(t);
      const m = f.message;
      if (m.kind === 'point-committed') return this.committed(m, cycle);
      if (m.kind !== 'cycle-ready')
        throw new SecondsiteError('SECONDSITE_ERR_PROTOCOL', `expected cycle-ready, got ${m.kind}`);
      if (m.cycleId !== cycle.cycleId)
        throw new SecondsiteError('SECONDSITE_ERR_PROTOCOL', 'cycle-ready for another cycle');
      for (const e of m.staged) (staged[e.diskIndex] as ByteRange[]).push(e);
      for (const e of m.adopted) (adopted[e.diskIndex] as ByteRange[]).push(e);
      if (m.last) break;
    }
    const stagedSets = staged.map((r) => coalesce(r));
    const adoptedSets = adopted.map((r) => coalesce(r));
    const digestFirst = (it: WorkItem): boolean =>
      it.digestFirst || covers(adoptedSets[it.diskIndex] as ByteRange[], it.offsetBytes, it.lengthBytes);
    const plannedBytes = plan.items.reduce((n, i) => n + i.lengthBytes, 0);
    this.stats.currentCycle = { cycleId: cycle.cycleId, plannedBytes, doneBytes: 0 };

    const win = new SendWindow(conn, windowBytesOf(this.policy), t);
    // every data item still to send, in the order it will be read (digest batches are flushed before
    // the next non-digest item, so reads stay in plan order)
    const toRead = plan.items.filter(
      (it) => !it.hole && !covers(stagedSets[it.diskIndex] as ByteRange[], it.offsetBytes, it.lengthBytes),
    );
    const reads = new ReadAhead(
      cycle.snapshots,
      toRead,
      READ_AHEAD_CHUNKS,
      (it) => !digestFirst(it),
      this.policy.compression,
    );
    const pending: WorkItem[] = [];
    const flushDigests = async (): Promise<void> => {
      if (pending.length === 0) return;
      const batch = pending.splice(0, pending.length);
      const datas: Buffer[] = [];
      for (const it of batch) datas.push((await reads.get(it)).data);
      await conn.send({
        kind: 'digests',
        chunks: batch.map((it, i) => ({
          diskIndex: it.diskIndex,
          offsetBytes: it.offsetBytes,
          lengthBytes: it.lengthBytes,
          digest: chunkChecksum(datas[i] as Buffer),
        })),
      });
      const diff = await win.waitFor('diff');
      if (diff.count !== batch.length)
        throw new SecondsiteError('SECONDSITE_ERR_PROTOCOL', 'diff count does not match digests sent');
      for (let i = 0; i < batch.length; i++) {
        const it = batch[i] as WorkItem;
        if (diff.differs[i]) await this.sendChunk(win, it, datas[i] as Buffer, st);
        else st.skippedByDigest++;
        this.progress(it.lengthBytes);
      }
    };
    for (const it of plan.items) {
      const done = stagedSets[it.diskIndex] as ByteRange[];
      if (it.hole) {
        for (const r of subtract([it], done)) await this.sendZero(win, { diskIndex: it.diskIndex, ...r }, st);
        this.progress(it.lengthBytes);
        continue;
      }
      if (covers(done, it.offsetBytes, it.lengthBytes)) {
        this.progress(it.lengthBytes);
        continue;
      }
      if (digestFirst(it)) {
        pending.push(it);
        if (pending.length >= this.policy.digestBatch) await flushDigests();
        continue;
      }
      await flushDigests();
      const { data, prepared } = await reads.get(it);
      await this.sendChunk(win, it, data, st, prepared);
      this.progress(it.lengthBytes);
    }
    await flushDigests();
    this.setState('waiting-commit');
    await conn.send({
      kind: 'cycle-end',
      cycleId: cycle.cycleId,
      cutWallMs: cycle.cutWallMs,
      consistency: cycle.consistency,
      cycleDigest: cycleDigestOf({
        cycleId: cycle.cycleId,
        cutWallMs: cycle.cutWallMs,
        consistency: cycle.consistency,
        planDigest,
      }),
    });
    const m = await win.waitFor('point-committed');
    return this.committed(m, cycle);
  }

  private committed(m: MessageOf<'point-committed'>, cycle: CycleToShip): CycleResult['point'] {
    if (m.cycleId !== cycle.cycleId || m.cutWallMs !== cycle.cutWallMs) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_PROTOCOL',
        `point-committed for cycle '${m.cycleId}', expected '${cycle.cycleId}'`,
      );
    }
    return {
      pointId: m.pointId,
      sequence: m.sequence,
      cutWallMs: m.cutWallMs,
      committedWallMs: m.committedWallMs,
    };
  }

  private progress(bytes: number): void {
    if (this.stats.currentCycle) this.stats.currentCycle.doneBytes += bytes;
  }

  private async sendZero(win: SendWindow, e: DiskExtent, st: CycleState): Promise<void> {
    await win.conn.send({ kind: 'zero', ...e });
    st.zero += e.lengthBytes;
    this.stats.zeroBytes += e.lengthBytes;
  }

  /** Sends one read chunk: its zero runs as ZERO frames, the rest as DATA (prepared ahead, or now). */
  private async sendChunk(
    win: SendWindow,
    it: DiskExtent,
    data: Buffer,
    st: CycleState,
    prepared?: Promise<PreparedRun[]>,
  ): Promise<void> {
    if (data.length !== it.lengthBytes) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_IO',
        `snapshot read returned ${data.length} bytes for ${it.lengthBytes}`,
      );
    }
    // Zero runs inside a chunk go as ZERO frames too: zero blocks never reach the compressor or the wire.
    const runs = await (prepared ?? prepareChunk(data, this.policy.compression));
    for (const run of runs) {
      const sub: DiskExtent = {
        diskIndex: it.diskIndex,
        offsetBytes: it.offsetBytes + run.startBytes,
        lengthBytes: run.lengthBytes,
      };
      if (run.data === null) await this.sendZero(win, sub, st);
      else await this.sendDataRun(win, sub, run.data, st);
    }
  }

  private async sendDataRun(
    win: SendWindow,
    it: DiskExtent,
    run: NonNullable<PreparedRun['data']>,
    st: CycleState,
  ): Promise<void> {
    const { compression, body, dataChecksum } = run;
    await win.beforeData(it.lengthBytes);
    if (this.bucket) await this.bucket.take(body.length + 128);
    const key = `${it.diskIndex}:${it.offsetBytes}`;
    if (st.sent.has(key)) {
      st.resent += it.lengthBytes;
      this.stats.resentBytes += it.lengthBytes;
    }
    st.sent.add(key);
    await win.sendData({ kind: 'data', ...it, compression, dataChecksum, body });
    st.logical += it.lengthBytes;
    this.stats.logicalBytesSent += it.lengthBytes;
  }
}

/**
 * The window in bytes: windowChunks x chunkBytes, at most MAX_WINDOW_BYTES (but never less than one
 * chunk). With the largest chunks (16 MiB) and 64 chunks the window would be 1 GiB: a replica would
 * datasync 512 MiB per ACK (past a frame timeout on slow storage) and a resume could re-send a GiB.
 */
export const MAX_WINDOW_BYTES = 64 * 1024 * 1024;
export function windowBytesOf(policy: Pick<SenderPolicy, 'windowChunks' | 'chunkBytes'>): number {
  return Math.max(policy.chunkBytes, Math.min(policy.windowChunks * policy.chunkBytes, MAX_WINDOW_BYTES));
}

/** One run of a chunk, ready to send: zero (a ZERO frame) or data with its body and checksum. */
interface PreparedRun {
  readonly startBytes: number;
  readonly lengthBytes: number;
  readonly data: { compression: Compression; body: Buffer; dataChecksum: Buffer } | null;
}

/**
 * Splits a chunk into zero and data runs and, for every data run, compresses it (when it pays, on the
 * libuv threadpool, in parallel with other chunks, this chunk's hash and the main thread's TLS work)
 * and computes its SHA-256. The SHA-256 runs here, synchronously: WebCrypto's threadpool digest first
 * copies the chunk into a fresh buffer on the main thread, which measured ~10 % more CPU per GiB on 2
 * shared cores than hashing in place (docs/benchmarks.md, 2026-11-22b). `data` must not change until
 * this resolves.
 */
async function prepareChunk(data: Buffer, compression: boolean): Promise<PreparedRun[]> {
  return await Promise.all(
    zeroRuns(data, ZERO_SCAN_BYTES).map(async (run): Promise<PreparedRun> => {
      if (run.zero) return { startBytes: run.startBytes, lengthBytes: run.lengthBytes, data: null };
      const slice = data.subarray(run.startBytes, run.startBytes + run.lengthBytes);
      // LZ4 starts on the threadpool first, so it overlaps the hash on this thread
      const compressing = compression ? compressChunkAsync(slice) : null;
      const dataChecksum = chunkChecksum(slice);
      const packed = compressing ? await compressing : { compression: 'none' as const, body: slice };
      return { startBytes: run.startBytes, lengthBytes: run.lengthBytes, data: { ...packed, dataChecksum } };
    }),
  );
}

/**
 * Reads the next few data items ahead (in plan order) so disk reads overlap hashing, compression and
 * sending, and prepares (`prepareChunk`) those that will be sent as data rather than compared by
 * digest. Bounded to `depth` chunks in memory. Out-of-order requests fall back to a direct read.
 */
class ReadAhead {
  private nextIndex = 0;
  private readonly inflight = new Map<
    WorkItem,
    { data: Promise<Buffer>; prepared: Promise<PreparedRun[]> | undefined }
  >();

  constructor(
    private readonly snapshots: readonly CycleSnapshot[],
    private readonly items: readonly WorkItem[],
    private readonly depth: number,
    /** Whether an item will be sent as data (prepared ahead), and with compression. */
    private readonly prepareAhead: (it: WorkItem) => boolean,
    private readonly compression: boolean,
  ) {}

  private read(it: WorkItem): Promise<Buffer> {
    return (this.snapshots[it.diskIndex] as CycleSnapshot).read(it.offsetBytes, it.lengthBytes);
  }

  private fill(): void {
    while (this.inflight.size < this.depth && this.nextIndex < this.items.length) {
      const it = this.items[this.nextIndex++] as WorkItem;
      const data = this.read(it);
      const prepared = this.prepareAhead(it)
        ? data.then((d) =>
            d.length === it.lengthBytes ? prepareChunk(d, this.compression) : Promise.resolve([]),
          )
        : undefined;
      // observed when awaited in get(); never an unhandled rejection
      data.catch(() => {});
      prepared?.catch(() => {});
      this.inflight.set(it, { data, prepared });
    }
  }

  /** The item's bytes and, if it was prepared ahead, its prepared runs. */
  async get(it: WorkItem): Promise<{ data: Buffer; prepared: Promise<PreparedRun[]> | undefined }> {
    this.fill();
    const p = this.inflight.get(it);
    this.inflight.delete(it);
    const data = await (p?.data ?? this.read(it));
    this.fill();
    return { data, prepared: p?.prepared };
  }
}

/**
 * The in-flight window, in logical DATA bytes: at most `sizeBytes` (windowChunks x chunkBytes) sent
 * without an ack, and a DATA frame carries SYNC once half a window was sent since the last one, so an
 * ack always comes before the window is full. Counted in bytes, not frames: zero runs split a chunk
 * into several smaller DATA frames, which must not shrink the window. Acks are consumed here; any
 * other frame is returned by `waitFor`.
 */
class SendWindow {
  private readonly unacked: Array<{ seq: number; bytes: number }> = [];
  private unackedBytes = 0;
  private sinceSyncBytes = 0;
  private readonly syncEveryBytes: number;

  constructor(
    readonly conn: FrameConnection,
    private readonly sizeBytes: number,
    private readonly timeoutMs: number,
  ) {
    this.syncEveryBytes = Math.ceil(sizeBytes / 2);
  }

  private onAck(m: MessageOf<'ack'>): void {
    while (this.unacked.length > 0 && (this.unacked[0] as { seq: number }).seq <= m.ackedSeq) {
      this.unackedBytes -= (this.unacked.shift() as { bytes: number }).bytes;
    }
  }

  /** Waits until a DATA frame of `bytes` logical bytes fits the window. */
  async beforeData(bytes: number): Promise<void> {
    while (this.unacked.length > 0 && this.unackedBytes + bytes > this.sizeBytes) {
      const f = await this.conn.next(this.timeoutMs);
      if (f.message.kind !== 'ack')
        throw new SecondsiteError('SECONDSITE_ERR_PROTOCOL', `expected ack, got ${f.message.kind}`);
      this.onAck(f.message);
    }
  }

  async sendData(m: MessageOf<'data'>): Promise<void> {
    this.sinceSyncBytes += m.lengthBytes;
    const sync = this.sinceSyncBytes >= this.syncEveryBytes;
    if (sync) this.sinceSyncBytes = 0;
    const seq = await this.conn.send(m, sync ? FLAG_SYNC : 0);
    this.unacked.push({ seq, bytes: m.lengthBytes });
    this.unackedBytes += m.lengthBytes;
  }

  async waitFor<K extends MessageKind>(kind: K): Promise<MessageOf<K>> {
    for (;;) {
      const f = await this.conn.next(this.timeoutMs);
      if (f.message.kind === 'ack') {
        this.onAck(f.message);
        if (kind !== 'ack') continue;
      }
      if (f.message.kind !== kind)
        throw new SecondsiteError('SECONDSITE_ERR_PROTOCOL', `expected ${kind}, got ${f.message.kind}`);
      return f.message as MessageOf<K>;
    }
  }
}

/** Granularity of zero detection inside a chunk (a zero run shorter than this is sent as data). */
export const ZERO_SCAN_BYTES = 64 * 1024;

/** Splits a chunk into maximal runs of all-zero and not-all-zero granules of `granuleBytes`. */
export function zeroRuns(
  data: Buffer,
  granuleBytes: number,
): Array<{ startBytes: number; lengthBytes: number; zero: boolean }> {
  const runs: Array<{ startBytes: number; lengthBytes: number; zero: boolean }> = [];
  for (let at = 0; at < data.length; at += granuleBytes) {
    const end = Math.min(data.length, at + granuleBytes);
    const zero = isAllZero(data.subarray(at, end));
    const last = runs[runs.length - 1];
    if (last && last.zero === zero) last.lengthBytes += end - at;
    else runs.push({ startBytes: at, lengthBytes: end - at, zero });
  }
  return runs;
}

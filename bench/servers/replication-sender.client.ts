/**
 * Bench-only primary host process: a disk file behind FileBlockDevice and the ChangeTrackingFilter, a
 * cut (cutCycle) and a ReplicationSender shipping the cycle over mutual TLS to a replica-receiver
 * process on 127.0.0.1. Prints one JSON line {"result":{...}} on stdout. Modes:
 *
 *   --mode initial --source FILE --work DIR --port P --tls DIR [--compression on|off]
 *       Initial replication of FILE (tracking is new, so the cut requires a full, sparse-aware copy).
 *       Reports the time of shipCycle (connect to POINT_COMMITTED) and the bytes read from the source.
 *
 *   --mode delta --disk FILE --work DIR --port P --tls DIR --changes-bytes N
 *       FILE is a fresh sparse disk: an initial cycle ships it (holes only), then N bytes of changes in
 *       the 'mix' pattern (2 random : 1 zero : 1 text, 64 KiB blocks) are written through the filter as
 *       1 MiB writes at every other MiB, a cycle is cut, and shipCycle is timed (compression on).
 *
 *   --mode stages --disk FILE --work DIR --changes-bytes N [--tls-port P --tls DIR] [--tcp-port Q]
 *       The same changes, each stage of the pipeline alone: snapshot read, zero check + LZ4 compression,
 *       SHA-256 chunk digests, TLS to a sink process, plain TCP to a sink process, and the replica's
 *       PointStore write + sync + commit (no network).
 */
import { mkdir } from 'node:fs/promises';
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { parseArgs } from 'node:util';
import { Rng } from '../../src/domain/random.js';
import { TRACKING_BLOCK_BYTES } from '../../src/host/agent/disk-service.js';
import { FileBlockDevice } from '../../src/host/block-device/file.block-device.js';
import { ChangeTrackingFilter } from '../../src/host/change-tracking/change-tracking.filter.js';
import type { CycleSnapshot } from '../../src/host/change-tracking/cycle-snapshot.js';
import { cutCycle } from '../../src/host/change-tracking/cycle-cut.js';
import { loadTlsIdentity, replicationClientOptions } from '../../src/host/pki/tls-config.js';
import { PointStore } from '../../src/host/recovery-points/point-store.js';
import { compressChunk, isAllZero } from '../../src/host/replication/chunk-compression.js';
import { DEFAULT_SENDER_POLICY, ReplicationSender } from '../../src/host/replication/replication-sender.js';
import { NodeStorage } from '../../src/host/storage/node-storage.js';
import { chunkChecksum } from '../../src/protocol/replication/cycle-digest.js';
import { PRIMARY_HOST, REPLICA_HOST } from '../lib/bench-pki.js';
import { BLOCK_BYTES, fillBlocks } from '../lib/mix-data.js';

const MiB = 1024 * 1024;
const CHUNK_BYTES = MiB; // the sender's default chunk
/** The receiver syncs when a DATA frame carries SYNC: every half window (32 MiB by default). */
const SYNC_EVERY_CHUNKS = Math.ceil(DEFAULT_SENDER_POLICY.windowChunks / 2);
const clock = { wallMs: () => Date.now(), monotonicMs: () => performance.now() };

const { values } = parseArgs({
  options: {
    mode: { type: 'string' },
    source: { type: 'string' },
    disk: { type: 'string' },
    work: { type: 'string' },
    port: { type: 'string' },
    tls: { type: 'string' },
    compression: { type: 'string' },
    'changes-bytes': { type: 'string' },
    'tls-port': { type: 'string' },
    'tcp-port': { type: 'string' },
  },
});

function required(name: keyof typeof values): string {
  const v = values[name];
  if (typeof v !== 'string') throw new Error(`--${name} is required`);
  return v;
}

/** Counts what the sender reads from the source. */
class CountingSnapshot implements CycleSnapshot {
  bytesRead = 0;
  reads = 0;
  constructor(private readonly inner: CycleSnapshot) {}
  get diskId(): string {
    return this.inner.diskId;
  }
  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }
  get trackingBlockBytes(): number {
    return this.inner.trackingBlockBytes;
  }
  get resyncRequired(): boolean {
    return this.inner.resyncRequired;
  }
  changedExtents(): ReadonlyArray<{ offsetBytes: number; lengthBytes: number }> {
    return this.inner.changedExtents();
  }
  read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    this.bytesRead += lengthBytes;
    this.reads++;
    return this.inner.read(offsetBytes, lengthBytes);
  }
  allocation(
    offsetBytes: number,
    lengthBytes: number,
  ): Promise<ReadonlyArray<{ offsetBytes: number; lengthBytes: number; data: boolean }>> {
    return this.inner.allocation(offsetBytes, lengthBytes);
  }
  complete(): Promise<void> {
    return this.inner.complete();
  }
  abandon(): Promise<void> {
    return this.inner.abandon();
  }
}

async function openTracked(file: string, work: string): Promise<ChangeTrackingFilter> {
  const storage = new NodeStorage();
  await mkdir(work, { recursive: true });
  const inner = await FileBlockDevice.open(await storage.open(file, 'readwrite'));
  return ChangeTrackingFilter.open(storage, inner, {
    diskId: 'd0',
    statePath: join(work, 'd0.tracking'),
    cowPath: join(work, 'd0.cow'),
    trackingBlockBytes: TRACKING_BLOCK_BYTES, // as the agent tracks its disks
  });
}

async function makeSender(compression: boolean): Promise<ReplicationSender> {
  return new ReplicationSender({
    tls: await loadTlsIdentity(required('tls'), PRIMARY_HOST),
    replica: { host: '127.0.0.1', port: Number(required('port')), hostId: REPLICA_HOST },
    relationship: { relationshipId: 'bench-vm', epoch: 0, storageLocation: 'bench' },
    policy: { compression },
    clock,
    rng: new Rng(1),
  });
}

/** The changes of the delta modes: 1 MiB pieces at every other MiB, 'mix' pattern. */
function changePieces(changesBytes: number): number[] {
  const out: number[] = [];
  for (let i = 0; i * MiB < changesBytes; i++) out.push(2 * i * MiB);
  return out;
}

async function writeChanges(filter: ChangeTrackingFilter, changesBytes: number): Promise<void> {
  const pieces = changePieces(changesBytes);
  const inFlight = new Set<Promise<void>>();
  for (const offset of pieces) {
    const buf = Buffer.allocUnsafe(MiB);
    fillBlocks(buf, offset / BLOCK_BYTES, 'mix');
    const p: Promise<void> = filter.write(offset, buf, { fua: false }).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= 8) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  await filter.flush();
}

function emit(result: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ result })}\n`);
}

async function initial(): Promise<void> {
  const filter = await openTracked(required('source'), required('work'));
  try {
    const [snap] = await cutCycle([filter]);
    if (!snap) throw new Error('no snapshot');
    const counting = new CountingSnapshot(snap);
    const sender = await makeSender(values.compression === 'on');
    const started = performance.now();
    const r = await sender.shipCycle({
      cycleId: 'initial',
      cutWallMs: Date.now(),
      consistency: 'crash-consistent',
      snapshots: [counting],
    });
    const elapsedMs = performance.now() - started;
    sender.disconnect();
    const alloc = await filter.extents(0, filter.sizeBytes);
    emit({
      elapsedMs,
      bytesRead: counting.bytesRead,
      reads: counting.reads,
      allocatedBytes: alloc.filter((e) => !e.hole).reduce((n, e) => n + e.lengthBytes, 0),
      logicalBytesSent: r.logicalBytesSent,
      wireBytesSent: r.wireBytesSent,
      zeroBytes: r.zeroBytes,
      pointId: r.point.pointId,
    });
  } finally {
    await filter.close();
  }
}

async function delta(): Promise<void> {
  const changesBytes = Number(required('changes-bytes'));
  const filter = await openTracked(required('disk'), required('work'));
  try {
    const sender = await makeSender(true);
    const [first] = await cutCycle([filter]);
    if (!first) throw new Error('no snapshot');
    const t0 = performance.now();
    await sender.shipCycle({
      cycleId: 'c1',
      cutWallMs: Date.now(),
      consistency: 'crash-consistent',
      snapshots: [first],
    });
    const initialMs = performance.now() - t0;
    await writeChanges(filter, changesBytes);
    const [snap] = await cutCycle([filter]);
    if (!snap) throw new Error('no snapshot');
    const counting = new CountingSnapshot(snap);
    const changedBytes = snap.changedExtents().reduce((n, e) => n + e.lengthBytes, 0);
    const before = { ...sender.stats };
    const started = performance.now();
    const r = await sender.shipCycle({
      cycleId: 'c2',
      cutWallMs: Date.now(),
      consistency: 'crash-consistent',
      snapshots: [counting],
    });
    const elapsedMs = performance.now() - started;
    sender.disconnect();
    emit({
      elapsedMs,
      initialCycleMs: initialMs,
      changedBytes,
      zeroBytesInChanges: zeroBytesOf(changesBytes),
      bytesRead: counting.bytesRead,
      logicalBytesSent: r.logicalBytesSent,
      wireBytesSent: r.wireBytesSent,
      zeroBytes: r.zeroBytes,
      statsLogicalDelta: sender.stats.logicalBytesSent - before.logicalBytesSent,
      statsZeroDelta: sender.stats.zeroBytes - before.zeroBytes,
    });
  } finally {
    await filter.close();
  }
}

function zeroBytesOf(changesBytes: number): number {
  let zero = 0;
  const buf = Buffer.allocUnsafe(MiB);
  for (const offset of changePieces(changesBytes)) {
    fillBlocks(buf, offset / BLOCK_BYTES, 'mix');
    for (let b = 0; b < MiB; b += BLOCK_BYTES)
      if (isAllZero(buf.subarray(b, b + BLOCK_BYTES))) zero += BLOCK_BYTES;
  }
  return zero;
}

async function sendToSink(socket: TLSSocket | Socket, bodies: Buffer[]): Promise<void> {
  const total = bodies.reduce((n, b) => n + b.length, 0);
  const header = Buffer.alloc(8);
  header.writeBigUInt64BE(BigInt(total));
  const done = new Promise<void>((resolve, reject) => {
    socket.once('data', () => resolve());
    socket.once('error', reject);
  });
  const write = (b: Buffer): Promise<void> =>
    new Promise((resolve) => {
      if (socket.write(b)) resolve();
      else socket.once('drain', resolve);
    });
  await write(header);
  for (const b of bodies) await write(b);
  await done;
  socket.destroy();
}

async function stages(): Promise<void> {
  const changesBytes = Number(required('changes-bytes'));
  const work = required('work');
  const filter = await openTracked(required('disk'), join(work, 'tracking'));
  const out: Record<string, unknown> = { changesBytes };
  const chunks: { offset: number; data: Buffer }[] = [];
  try {
    // The first cut of a new tracker is a resync; complete it so the next one is incremental.
    const [first] = await cutCycle([filter]);
    await first?.complete();
    await writeChanges(filter, changesBytes);
    const [snap] = await cutCycle([filter]);
    if (!snap) throw new Error('no snapshot');
    const t0 = performance.now();
    for (const e of snap.changedExtents()) {
      for (let at = e.offsetBytes; at < e.offsetBytes + e.lengthBytes; at += CHUNK_BYTES) {
        const n = Math.min(CHUNK_BYTES, e.offsetBytes + e.lengthBytes - at);
        chunks.push({ offset: at, data: await snap.read(at, n) });
      }
    }
    out['readMs'] = performance.now() - t0;
    await snap.abandon();
  } finally {
    await filter.close();
  }
  // zero check + compression, exactly as the sender calls them
  const bodies: Buffer[] = [];
  let zeroChunks = 0;
  let t = performance.now();
  for (const c of chunks) {
    if (isAllZero(c.data)) {
      zeroChunks++;
      continue;
    }
    bodies.push(compressChunk(c.data).body);
  }
  out['compressMs'] = performance.now() - t;
  out['zeroChunks'] = zeroChunks;
  out['compressedBytes'] = bodies.reduce((n, b) => n + b.length, 0);
  t = performance.now();
  for (const c of chunks) chunkChecksum(c.data);
  out['digestMs'] = performance.now() - t;
  // TLS and plain TCP to a sink in another process
  if (values['tls-port'] !== undefined) {
    const id = await loadTlsIdentity(required('tls'), PRIMARY_HOST);
    t = performance.now();
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: Number(values['tls-port']),
      ...replicationClientOptions(id, REPLICA_HOST),
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    await sendToSink(socket, bodies);
    out['tlsMs'] = performance.now() - t;
  }
  if (values['tcp-port'] !== undefined) {
    t = performance.now();
    const socket = tcpConnect({ host: '127.0.0.1', port: Number(values['tcp-port']) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.setNoDelay(true);
    await sendToSink(socket, bodies);
    out['tcpMs'] = performance.now() - t;
  }
  // the replica's write + sync + commit, with a first point in place as in a real delta cycle
  const storage = new NodeStorage();
  const storeDir = join(work, 'store');
  await mkdir(storeDir, { recursive: true });
  const store = await PointStore.open({ storage, storageDir: storeDir, relationshipId: 'bench-vm', clock });
  try {
    const diskBytes = (chunks.at(-1)?.offset ?? 0) + MiB;
    await store.ensureDisk('d0', Math.max(diskBytes, 2 * changesBytes));
    const w0 = await store.beginCycle('c1', 0);
    await w0.zeroRange('d0', 0, Math.max(diskBytes, 2 * changesBytes));
    await w0.sync();
    await w0.commit({ cutWallMs: Date.now(), consistency: 'crash-consistent' });
    // the receiver hands the store the chunk digest it has verified (not part of this stage)
    const digests = chunks.map((c) => chunkChecksum(c.data));
    t = performance.now();
    const w = await store.beginCycle('c2', 0);
    let sinceSync = 0;
    for (const [i, c] of chunks.entries()) {
      if (isAllZero(c.data)) await w.zeroRange('d0', c.offset, c.data.length);
      else await w.writeChunk('d0', c.offset, c.data, digests[i]);
      if (++sinceSync >= SYNC_EVERY_CHUNKS) {
        await w.sync(); // as the receiver: every half window of data frames
        sinceSync = 0;
      }
    }
    await w.sync();
    await w.commit({ cutWallMs: Date.now(), consistency: 'crash-consistent' });
    out['replicaWriteMs'] = performance.now() - t;
  } finally {
    await store.close();
  }
  emit(out);
}

const mode = values.mode;
if (mode === 'initial') await initial();
else if (mode === 'delta') await delta();
else if (mode === 'stages') await stages();
else {
  process.stderr.write('usage: replication-sender.client.ts --mode initial|delta|stages ...\n');
  process.exit(2);
}

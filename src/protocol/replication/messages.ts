/**
 * The messages of the host-to-host replication protocol (docs/design/replication.md) and their strict
 * binary payload codecs. Each message type has a one-byte frame type; decoding checks every field
 * against the bytes present and the caps below and refuses trailing bytes. Context checks (known disk,
 * offset + length within the disk, epoch, seq) live in frame-rules.ts.
 */
import { Buffer } from 'node:buffer';
import { SecondsiteError } from '../../domain/errors.js';
import { MAX_MESSAGE_BYTES, PayloadReader, PayloadWriter } from './payload-codec.js';

/** Largest DATA chunk (uncompressed). */
export const MAX_CHUNK_BYTES = 16 * 1024 * 1024;
/** Most disks in one relationship. */
export const MAX_DISKS = 64;
/** Largest VM definition carried in HELLO (JSON text). */
export const MAX_VM_CONFIG_BYTES = 16 * 1024;

/** Most extents in one PLAN / CYCLE_READY frame, and digests in one DIGESTS frame. */
export const MAX_EXTENTS_PER_FRAME = 65536;
/** Most plan extents in one cycle (the sender coarsens the plan beyond this). */
export const MAX_PLAN_EXTENTS = 1_000_000;
export const DIGEST_BYTES = 32;
/** Bytes of a DATA payload before its body: disk u16, offset u64, length u32, compression u8, SHA-256. */
export const DATA_FIELDS_BYTES = 2 + 8 + 4 + 1 + DIGEST_BYTES;

export const FRAME_TYPES = {
  hello: 1,
  welcome: 2,
  'cycle-begin': 3,
  plan: 4,
  'cycle-ready': 5,
  digests: 6,
  diff: 7,
  data: 8,
  zero: 9,
  'cycle-end': 10,
  ack: 11,
  'point-committed': 12,
  error: 13,
} as const;
/** Most hours of hourly recovery points a relationship may keep (a year). */
export const MAX_RETENTION_HOURS = 8784;

export type MessageKind = keyof typeof FRAME_TYPES;
const KIND_BY_TYPE = new Map<number, MessageKind>(
  Object.entries(FRAME_TYPES).map(([k, v]) => [v, k as MessageKind]),
);

/** Kinds only the sender (primary) may send; every other kind only the receiver (replica) may send. */
export const SENDER_KINDS: ReadonlySet<MessageKind> = new Set<MessageKind>([
  'hello',
  'cycle-begin',
  'plan',
  'digests',
  'data',
  'zero',
  'cycle-end',
  'error',
]);
export const RECEIVER_KINDS: ReadonlySet<MessageKind> = new Set<MessageKind>([
  'welcome',
  'cycle-ready',
  'diff',
  'ack',
  'point-committed',
  'error',
]);

export type Consistency = 'crash-consistent' | 'app-consistent';
export type CycleMode = 'incremental' | 'resync';
export type Compression = 'none' | 'lz4';

export interface DiskExtent {
  diskIndex: number;
  offsetBytes: number;
  lengthBytes: number;
}

export type Message =
  | {
      kind: 'hello';
      primaryHostId: string;
      relationshipId: string;
      storageLocation: string;
      disks: Array<{ diskId: string; sizeBytes: number }>;
      /** The policy's recovery point retention: hourly points the replica keeps besides the latest. */
      retentionHours: number;
      /**
       * The VM's definition apart from its disks (name, NICs, guest settings) as JSON, so the replica
       * can start it on failover; '' when the primary has none. At most MAX_VM_CONFIG_BYTES.
       */
      vmConfig: string;
    }
  | {
      kind: 'welcome';
      replicaHostId: string;
      epoch: number;
      lastPoint: { pointId: string; sequence: number; cycleId: string; cutWallMs: number } | null;
    }
  | {
      kind: 'cycle-begin';
      cycleId: string;
      cutWallMs: number;
      consistency: Consistency;
      mode: CycleMode;
      planExtentCount: number;
      planDigest: Buffer;
    }
  | { kind: 'plan'; extents: DiskExtent[] }
  | {
      kind: 'cycle-ready';
      cycleId: string;
      /** Durable ranges of this cycle: the sender skips them. */
      staged: DiskExtent[];
      /** Durable ranges staged by earlier cycles and adopted: the sender sends digests for them. */
      adopted: DiskExtent[];
      last: boolean;
    }
  | { kind: 'digests'; chunks: Array<DiskExtent & { digest: Buffer }> }
  | { kind: 'diff'; count: number; differs: boolean[] }
  | {
      kind: 'data';
      diskIndex: number;
      offsetBytes: number;
      lengthBytes: number;
      compression: Compression;
      /** SHA-256 of the uncompressed bytes. */
      dataChecksum: Buffer;
      /** The bytes as sent: raw, or an LZ4 block with a 4-byte little-endian size prefix. */
      body: Buffer;
    }
  | { kind: 'zero'; diskIndex: number; offsetBytes: number; lengthBytes: number }
  | { kind: 'cycle-end'; cycleId: string; cutWallMs: number; consistency: Consistency; cycleDigest: Buffer }
  | { kind: 'ack'; ackedSeq: number; stagedBytes: number }
  | {
      kind: 'point-committed';
      pointId: string;
      sequence: number;
      cycleId: string;
      cutWallMs: number;
      committedWallMs: number;
    }
  | { kind: 'error'; code: string; message: string };

export type MessageOf<K extends MessageKind> = Extract<Message, { kind: K }>;

function bad(message: string, details: Record<string, unknown> = {}): SecondsiteError {
  return new SecondsiteError('SECONDSITE_ERR_BAD_FRAME', message, details);
}

export function kindOfType(type: number): MessageKind | undefined {
  return KIND_BY_TYPE.get(type);
}

const CONSISTENCY: readonly Consistency[] = ['crash-consistent', 'app-consistent'];
const MODES: readonly CycleMode[] = ['incremental', 'resync'];
const COMPRESSIONS: readonly Compression[] = ['none', 'lz4'];

function enumByte<T>(values: readonly T[], v: T): number {
  const i = values.indexOf(v);
  if (i < 0) throw new RangeError(`unknown enum value ${String(v)}`);
  return i;
}

function enumRead<T>(r: PayloadReader, values: readonly T[], field: string, what: string): T {
  const b = r.u8(field);
  const v = values[b];
  if (v === undefined) throw bad(`${what}: unknown ${field} ${b}`, { field });
  return v;
}

function writeExtents(w: PayloadWriter, extents: readonly DiskExtent[]): void {
  if (extents.length > MAX_EXTENTS_PER_FRAME) throw new RangeError('too many extents for one frame');
  w.u32(extents.length);
  for (const e of extents) w.u16(e.diskIndex).u64(e.offsetBytes).u64(e.lengthBytes);
}

function readExtents(r: PayloadReader, what: string): DiskExtent[] {
  const n = r.u32('extentCount');
  if (n > MAX_EXTENTS_PER_FRAME) throw bad(`${what}: ${n} extents, cap ${MAX_EXTENTS_PER_FRAME}`);
  // 18 bytes each: refuse before allocating anything for them.
  if (n * 18 > r.remaining) throw bad(`${what}: ${n} extents do not fit the payload`);
  const out: DiskExtent[] = [];
  for (let i = 0; i < n; i++) {
    const diskIndex = r.u16('diskIndex');
    const offsetBytes = r.u64('offsetBytes');
    const lengthBytes = r.u64('lengthBytes');
    if (lengthBytes === 0) throw bad(`${what}: extent ${i} has length 0`);
    out.push({ diskIndex, offsetBytes, lengthBytes });
  }
  return out;
}

/** Encodes a message payload as parts (a DATA body is passed through without a copy). */
export function encodeMessage(m: Message): Buffer[] {
  const w = new PayloadWriter();
  switch (m.kind) {
    case 'hello':
      w.str(m.primaryHostId).str(m.relationshipId).str(m.storageLocation).u16(m.disks.length);
      for (const d of m.disks) w.str(d.diskId).u64(d.sizeBytes);
      w.u16(m.retentionHours);
      w.str(m.vmConfig, MAX_VM_CONFIG_BYTES);
      break;
    case 'welcome':
      w.str(m.replicaHostId)
        .u64(m.epoch)
        .u8(m.lastPoint ? 1 : 0);
      if (m.lastPoint) {
        w.str(m.lastPoint.pointId)
          .u64(m.lastPoint.sequence)
          .str(m.lastPoint.cycleId)
          .u64(m.lastPoint.cutWallMs);
      }
      break;
    case 'cycle-begin':
      w.str(m.cycleId)
        .u64(m.cutWallMs)
        .u8(enumByte(CONSISTENCY, m.consistency))
        .u8(enumByte(MODES, m.mode))
        .u32(m.planExtentCount)
        .bytes(m.planDigest);
      break;
    case 'plan':
      writeExtents(w, m.extents);
      break;
    case 'cycle-ready':
      w.str(m.cycleId).u8(m.last ? 1 : 0);
      writeExtents(w, m.staged);
      writeExtents(w, m.adopted);
      break;
    case 'digests':
      if (m.chunks.length > MAX_EXTENTS_PER_FRAME) throw new RangeError('too many digests for one frame');
      w.u32(m.chunks.length);
      for (const c of m.chunks) w.u16(c.diskIndex).u64(c.offsetBytes).u32(c.lengthBytes).bytes(c.digest);
      break;
    case 'diff': {
      const bits = Buffer.alloc(Math.ceil(m.count / 8));
      m.differs.forEach((d, i) => {
        if (d) bits[i >> 3] = (bits[i >> 3] ?? 0) | (1 << (i & 7));
      });
      w.u32(m.count).bytes(bits);
      break;
    }
    case 'data':
      w.u16(m.diskIndex)
        .u64(m.offsetBytes)
        .u32(m.lengthBytes)
        .u8(enumByte(COMPRESSIONS, m.compression))
        .bytes(m.dataChecksum)
        .bytes(m.body);
      break;
    case 'zero':
      w.u16(m.diskIndex).u64(m.offsetBytes).u64(m.lengthBytes);
      break;
    case 'cycle-end':
      w.str(m.cycleId).u64(m.cutWallMs).u8(enumByte(CONSISTENCY, m.consistency)).bytes(m.cycleDigest);
      break;
    case 'ack':
      w.u64(m.ackedSeq).u64(m.stagedBytes);
      break;
    case 'point-committed':
      w.str(m.pointId).u64(m.sequence).str(m.cycleId).u64(m.cutWallMs).u64(m.committedWallMs);
      break;
    case 'error':
      w.str(m.code).str(m.message.slice(0, 1000), MAX_MESSAGE_BYTES);
      break;
  }
  return w.finish();
}

/** Decodes and validates a payload of the given kind (field checks only; see frame-rules.ts). */
export function decodeMessage(kind: MessageKind, payload: Buffer): Message {
  const what = `${kind} frame`;
  const r = new PayloadReader(payload, what);
  let m: Message;
  switch (kind) {
    case 'hello': {
      const primaryHostId = r.str('primaryHostId');
      const relationshipId = r.str('relationshipId');
      const storageLocation = r.str('storageLocation');
      const n = r.u16('diskCount');
      if (n === 0 || n > MAX_DISKS) throw bad(`${what}: ${n} disks, must be 1..${MAX_DISKS}`);
      const disks: Array<{ diskId: string; sizeBytes: number }> = [];
      for (let i = 0; i < n; i++) {
        const diskId = r.str('diskId');
        const sizeBytes = r.u64('sizeBytes');
        if (diskId === '' || disks.some((d) => d.diskId === diskId))
          throw bad(`${what}: empty or duplicate disk id`);
        disks.push({ diskId, sizeBytes });
      }
      const retentionHours = r.u16('retentionHours');
      if (retentionHours > MAX_RETENTION_HOURS)
        throw bad(`${what}: retention ${retentionHours} h, at most ${MAX_RETENTION_HOURS}`);
      if (primaryHostId === '' || relationshipId === '') throw bad(`${what}: empty host or relationship id`);
      const vmConfig = r.str('vmConfig', MAX_VM_CONFIG_BYTES);
      m = { kind, primaryHostId, relationshipId, storageLocation, disks, retentionHours, vmConfig };
      break;
    }
    case 'welcome': {
      const replicaHostId = r.str('replicaHostId');
      const epoch = r.u64('epoch');
      const has = r.u8('hasLastPoint');
      if (has > 1) throw bad(`${what}: bad hasLastPoint ${has}`);
      const lastPoint =
        has === 1
          ? {
              pointId: r.str('pointId'),
              sequence: r.u64('sequence'),
              cycleId: r.str('cycleId'),
              cutWallMs: r.u64('cutWallMs'),
            }
          : null;
      m = { kind, replicaHostId, epoch, lastPoint };
      break;
    }
    case 'cycle-begin': {
      const cycleId = r.str('cycleId');
      const cutWallMs = r.u64('cutWallMs');
      const consistency = enumRead(r, CONSISTENCY, 'consistency', what);
      const mode = enumRead(r, MODES, 'mode', what);
      const planExtentCount = r.u32('planExtentCount');
      if (planExtentCount > MAX_PLAN_EXTENTS)
        throw bad(`${what}: ${planExtentCount} plan extents, cap ${MAX_PLAN_EXTENTS}`);
      if (cycleId === '') throw bad(`${what}: empty cycle id`);
      m = {
        kind,
        cycleId,
        cutWallMs,
        consistency,
        mode,
        planExtentCount,
        planDigest: r.bytes(DIGEST_BYTES, 'planDigest'),
      };
      break;
    }
    case 'plan':
      m = { kind, extents: readExtents(r, what) };
      break;
    case 'cycle-ready': {
      const cycleId = r.str('cycleId');
      const last = r.u8('last');
      if (last > 1) throw bad(`${what}: bad last flag ${last}`);
      const staged = readExtents(r, what);
      m = { kind, cycleId, last: last === 1, staged, adopted: readExtents(r, what) };
      break;
    }
    case 'digests': {
      const n = r.u32('digestCount');
      if (n > MAX_EXTENTS_PER_FRAME || n * (14 + DIGEST_BYTES) > r.remaining)
        throw bad(`${what}: bad digest count ${n}`);
      const chunks: Array<DiskExtent & { digest: Buffer }> = [];
      for (let i = 0; i < n; i++) {
        const diskIndex = r.u16('diskIndex');
        const offsetBytes = r.u64('offsetBytes');
        const lengthBytes = r.u32('lengthBytes');
        if (lengthBytes === 0 || lengthBytes > MAX_CHUNK_BYTES)
          throw bad(`${what}: chunk length ${lengthBytes} out of 1..${MAX_CHUNK_BYTES}`);
        chunks.push({ diskIndex, offsetBytes, lengthBytes, digest: r.bytes(DIGEST_BYTES, 'digest') });
      }
      m = { kind, chunks };
      break;
    }
    case 'diff': {
      const count = r.u32('count');
      if (count > MAX_EXTENTS_PER_FRAME) throw bad(`${what}: count ${count}, cap ${MAX_EXTENTS_PER_FRAME}`);
      const bits = r.bytes(Math.ceil(count / 8), 'bits');
      const differs: boolean[] = [];
      for (let i = 0; i < count; i++) differs.push(((bits[i >> 3] ?? 0) & (1 << (i & 7))) !== 0);
      m = { kind, count, differs };
      break;
    }
    case 'data': {
      const diskIndex = r.u16('diskIndex');
      const offsetBytes = r.u64('offsetBytes');
      const lengthBytes = r.u32('lengthBytes');
      const compression = enumRead(r, COMPRESSIONS, 'compression', what);
      const dataChecksum = r.bytes(DIGEST_BYTES, 'dataChecksum');
      if (lengthBytes === 0 || lengthBytes > MAX_CHUNK_BYTES) {
        throw bad(`${what}: length ${lengthBytes} out of 1..${MAX_CHUNK_BYTES}`, { lengthBytes });
      }
      const body = r.rest();
      if (compression === 'none' && body.length !== lengthBytes) {
        throw bad(`${what}: raw body is ${body.length} bytes, header says ${lengthBytes}`);
      }
      if (compression === 'lz4') {
        // LZ4 block with a 4-byte LE size prefix; compressed only when it pays, so strictly smaller.
        if (body.length < 5 || body.length >= lengthBytes)
          throw bad(`${what}: lz4 body of ${body.length} bytes for ${lengthBytes}`);
        if (body.readUInt32LE(0) !== lengthBytes)
          throw bad(`${what}: lz4 size prefix ${body.readUInt32LE(0)} != ${lengthBytes}`);
      }
      m = { kind, diskIndex, offsetBytes, lengthBytes, compression, dataChecksum, body };
      break;
    }
    case 'zero': {
      const diskIndex = r.u16('diskIndex');
      const offsetBytes = r.u64('offsetBytes');
      const lengthBytes = r.u64('lengthBytes');
      if (lengthBytes === 0) throw bad(`${what}: length 0`);
      m = { kind, diskIndex, offsetBytes, lengthBytes };
      break;
    }
    case 'cycle-end': {
      const cycleId = r.str('cycleId');
      const cutWallMs = r.u64('cutWallMs');
      const consistency = enumRead(r, CONSISTENCY, 'consistency', what);
      m = { kind, cycleId, cutWallMs, consistency, cycleDigest: r.bytes(DIGEST_BYTES, 'cycleDigest') };
      break;
    }
    case 'ack':
      m = { kind, ackedSeq: r.u64('ackedSeq'), stagedBytes: r.u64('stagedBytes') };
      break;
    case 'point-committed':
      m = {
        kind,
        pointId: r.str('pointId'),
        sequence: r.u64('sequence'),
        cycleId: r.str('cycleId'),
        cutWallMs: r.u64('cutWallMs'),
        committedWallMs: r.u64('committedWallMs'),
      };
      break;
    case 'error':
      m = { kind, code: r.str('code'), message: r.str('message', MAX_MESSAGE_BYTES) };
      break;
  }
  r.end();
  return m;
}

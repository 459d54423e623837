/**
 * The recovery-point checker of data-safety.md 2.5: is this image (all disks of one VM) a state the
 * disks could legally be in, given the history of writes the workload generator recorded?
 *
 *   const report = await checkRecoveryPoint({
 *     history,                                   // WriteHistory (gen.history or readHistoryFile(path))
 *     disks: [{ diskId: 0, path: '/tmp/r.img' }], // or { read }, { device: BlockDevice }, { buffer }
 *     mode: 'recovery-point',                    // | 'crash' | 'planned'
 *     cutTimeMs,                                 // T_rp in monotonicNowMs() time; omit = no durability check
 *   });
 *   assert.ok(report.ok, formatReport(report));
 *
 * Modes:
 *   'recovery-point' (replica points, test failover disks; crash-consistent WITH write-order fidelity):
 *     1. Integrity: every block is initial content (zeros, or the initial pattern) or a valid stamped
 *        block of this run at its own position -> else CORRUPT (bad checksum/payload), PHANTOM (a writeId
 *        this history never issued, another run's block, a header epoch that disagrees with the history)
 *        or MISDIRECTED (a real write, but of another block or disk).
 *     2. E = the highest epoch observed on any disk (one E for the whole VM, step 8).
 *     3. Order: each block holds prev(b) = its last version of epoch <= E-1, or cur(b) = its epoch-E
 *        version. Anything older is a HOLE (or TORN when it is part of a multi-block write of an earlier
 *        epoch that is visible elsewhere). TRIM versions may read as zeros or as the content before.
 *     4. Tearing (sectors of different writes) is allowed only when an epoch-E write is involved; else TORN.
 *     5. Durability at cutTimeMs = T: every op covered by a flush acknowledged at or before T
 *        (FlushedEpoch(T), per disk) and every FUA op acknowledged at or before T is required: its epoch
 *        must be < E, or == E with the op fully present. Else LOST_FLUSHED_WRITE.
 *     Since WRITE_ZEROES and TRIM are invisible to step 2, an image that fails at the observed E is also
 *     judged at E+1..E+16 and at the highest required epoch; it is legal if any of them passes (the
 *     report then names that E), else the violations at the observed E are reported.
 *   'crash' (a primary disk after power loss: NBD semantics, NO ordering between unflushed writes):
 *     each block holds its last durable version (flushed or FUA-acked before T) or any later version
 *     submitted before T, possibly torn among those; older content is LOST_FLUSHED_WRITE.
 *   'planned' (planned failover: replica == primary at shutdown): each block holds exactly its final
 *     version, untorn; anything older is LOST_FLUSHED_WRITE. (`compareImages` compares two images.)
 *
 * Never throws on bad image data; every finding is a violation in the report. It throws only on misuse
 * (a disk of the history has no image) or when reading an image fails. Cost: one pass over the images
 * (~600 MB/s) plus O(blocks + block-versions) in memory.
 */
import { SecondsiteError } from '../../domain/errors.js';
import {
  BLOCK_SIZE_BYTES,
  BlockReader,
  INITIAL_WRITE_ID,
  type BlockObservation,
} from '../workload/block-format.js';
import { monotonicNowMs, type HistoryOp, type WriteHistory } from '../workload/write-history.js';
import { openImage, type DiskImage } from './disk-image.js';

export type ViolationKind = 'CORRUPT' | 'HOLE' | 'PHANTOM' | 'MISDIRECTED' | 'TORN' | 'LOST_FLUSHED_WRITE';
export type CheckMode = 'recovery-point' | 'crash' | 'planned';

export interface Violation {
  kind: ViolationKind;
  diskId: number;
  lba: number;
  /** What a legal image holds there, for people. */
  expected: string;
  /** What the image holds there, for people. */
  observed: string;
}

export interface CheckOptions {
  history: WriteHistory;
  /** One image per disk of the history. */
  disks: DiskImage[];
  mode?: CheckMode;
  /** T_rp / crash time in monotonicNowMs() time; omitted = nothing is required to be durable. */
  cutTimeMs?: number;
  /** Violations kept in the report (all are counted); default 200. */
  maxViolations?: number;
  /** Read size; default 4 MiB. */
  chunkBytes?: number;
}

export interface CheckReport {
  ok: boolean;
  mode: CheckMode;
  /** E: the epoch the image was judged at (the observed maximum, or the required one, see step 5). */
  maxEpoch: number;
  /** The highest epoch seen in a stamped block. */
  observedMaxEpoch: number;
  /** FlushedEpoch(cutTimeMs) for the whole VM (lowest over disks); null without cutTimeMs. */
  flushedEpoch: number | null;
  cutTimeMs: number | null;
  violations: Violation[];
  violationCounts: Partial<Record<ViolationKind, number>>;
  stats: {
    disks: number;
    blocks: number;
    zeroBlocks: number;
    stampedBlocks: number;
    /** Torn blocks that were legal (an epoch-E or unflushed write in progress). */
    allowedTornBlocks: number;
    /** Epoch-E ops fully present / partly present / absent (recovery-point mode). */
    epochEOps: { present: number; partial: number; absent: number };
    bytesRead: number;
    elapsedMs: number;
  };
}

const ZERO = -1;
/** How many epochs above the observed maximum are tried as E (see step 5 in the file comment). */
const EXTRA_EPOCHS_TRIED = 16;
const SPECIAL = -2;

interface DiskObservations {
  diskId: number;
  blocks: number;
  /** >= 0: an intact, history-consistent write (writeId) at its own block; ZERO; SPECIAL (see map). */
  code: Float64Array;
  special: Map<number, BlockObservation>;
  /** Ops touching each block, sorted by (epoch, writeId): versions[start[b] .. start[b+1]). */
  start: Int32Array;
  versions: Int32Array;
}

/** Checks images against a history; see the file comment for the rules. */
export async function checkRecoveryPoint(options: CheckOptions): Promise<CheckReport> {
  const t0 = monotonicNowMs();
  const mode = options.mode ?? 'recovery-point';
  const history = options.history;
  const cut = options.cutTimeMs ?? null;
  const ops = [...history.ops].sort((a, b) => a.epoch - b.epoch || a.writeId - b.writeId);
  const reader = new BlockReader(history.seed);
  const initialKey = history.header.initialContent === 'pattern' ? INITIAL_WRITE_ID : ZERO;
  let observedMaxEpoch = 0;
  let bytesRead = 0;
  let zeroBlocks = 0;
  let stampedBlocks = 0;

  const disks: DiskObservations[] = [];
  for (const hd of history.header.disks) {
    const image = options.disks.find((d) => d.diskId === hd.diskId);
    if (!image) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `no image given for disk ${hd.diskId} of the history; pass one DiskImage per disk`,
      );
    }
    const blocks = Math.floor(hd.sizeBytes / BLOCK_SIZE_BYTES);
    const obs: DiskObservations = {
      diskId: hd.diskId,
      blocks,
      code: new Float64Array(blocks),
      special: new Map(),
      ...indexVersions(ops, hd.diskId, blocks),
    };
    const chunkBlocks = Math.max(1, Math.floor((options.chunkBytes ?? 4 * 1024 * 1024) / BLOCK_SIZE_BYTES));
    const r = await openImage(image);
    try {
      for (let lba0 = 0; lba0 < blocks; lba0 += chunkBlocks) {
        const n = Math.min(chunkBlocks, blocks - lba0);
        const buf = await r.read(lba0 * BLOCK_SIZE_BYTES, n * BLOCK_SIZE_BYTES);
        bytesRead += buf.length;
        for (let i = 0; i < n; i++) {
          const lba = lba0 + i;
          const o = reader.observe(buf, i * BLOCK_SIZE_BYTES, lba);
          if (o.kind === 'zero') {
            obs.code[lba] = ZERO;
            zeroBlocks++;
            continue;
          }
          stampedBlocks++;
          if (o.kind === 'block' && o.diskId === hd.diskId && o.lba === lba) {
            const epoch = validEpoch(history, o.writeId, hd.diskId, lba, initialKey);
            if (epoch !== null && epoch === o.epoch) {
              obs.code[lba] = o.writeId;
              if (epoch > observedMaxEpoch) observedMaxEpoch = epoch;
              continue;
            }
          }
          if (o.kind === 'torn') {
            for (const s of o.sectors) {
              if (s.kind !== 'write') continue;
              const epoch = validEpoch(history, s.writeId, hd.diskId, lba, initialKey);
              if (epoch !== null && epoch > observedMaxEpoch) observedMaxEpoch = epoch;
            }
          }
          obs.code[lba] = SPECIAL;
          obs.special.set(lba, o);
        }
      }
    } finally {
      await r.close();
    }
    disks.push(obs);
  }

  const ctx: EvalContext = { history, ops, disks, initialKey, cut, mode };
  let result: Evaluation;
  let flushedEpoch: number | null = null;
  if (mode === 'recovery-point') {
    // E is the observed maximum unless the image is legal at a slightly higher E: epochs made only of
    // WRITE_ZEROES/TRIM (or whose writes were zeroed again) are invisible, and durability may require them.
    result = evaluateRecoveryPoint(ctx, observedMaxEpoch);
    const maxEpoch = history.maxEpoch;
    const candidates = new Set<number>();
    for (let e = observedMaxEpoch + 1; e <= Math.min(maxEpoch, observedMaxEpoch + EXTRA_EPOCHS_TRIED); e++)
      candidates.add(e);
    const required = requiredEpoch(ctx);
    if (required > observedMaxEpoch) candidates.add(required);
    for (const e of [...candidates].sort((a, b) => a - b)) {
      if (result.violations.length === 0) break;
      const alt = evaluateRecoveryPoint(ctx, e);
      if (alt.violations.length === 0) result = alt;
    }
  } else {
    result = evaluateCrashOrPlanned(ctx);
  }
  if (cut !== null) flushedEpoch = history.flushedEpoch(cut);

  const counts: Partial<Record<ViolationKind, number>> = {};
  for (const v of result.violations) counts[v.kind] = (counts[v.kind] ?? 0) + 1;
  return {
    ok: result.violations.length === 0,
    mode,
    maxEpoch: result.epoch,
    observedMaxEpoch,
    flushedEpoch,
    cutTimeMs: cut,
    violations: result.violations.slice(0, options.maxViolations ?? 200),
    violationCounts: counts,
    stats: {
      disks: disks.length,
      blocks: disks.reduce((s, d) => s + d.blocks, 0),
      zeroBlocks,
      stampedBlocks,
      allowedTornBlocks: result.allowedTorn,
      epochEOps: result.epochEOps,
      bytesRead,
      elapsedMs: monotonicNowMs() - t0,
    },
  };
}

/** A one-paragraph summary of a report for assertion messages. */
export function formatReport(report: CheckReport, maxLines = 10): string {
  const head =
    `${report.ok ? 'OK' : 'VIOLATIONS'} mode=${report.mode} E=${report.maxEpoch} (observed ${report.observedMaxEpoch})` +
    ` flushedEpoch=${report.flushedEpoch ?? '-'} counts=${JSON.stringify(report.violationCounts)}`;
  const lines = report.violations
    .slice(0, maxLines)
    .map((v) => `  ${v.kind} disk ${v.diskId} lba ${v.lba}: expected ${v.expected}; observed ${v.observed}`);
  return [head, ...lines].join('\n');
}

/**
 * Freshness of a recovery point (data-safety.md 2.5 step 6): lossEpochs = FlushedEpoch(T_crash) - (E-1),
 * floored at 0 (flushed epochs the point does not fully hold), and ageMs = T_failover - T_rp.
 */
export function recoveryPointFreshness(
  history: WriteHistory,
  report: Pick<CheckReport, 'maxEpoch'>,
  times: { crashTimeMs: number; cutTimeMs?: number; failoverTimeMs?: number },
): { lossEpochs: number; flushedEpochAtCrash: number; ageMs: number | null } {
  const flushedEpochAtCrash = history.flushedEpoch(times.crashTimeMs);
  return {
    flushedEpochAtCrash,
    lossEpochs: Math.max(0, flushedEpochAtCrash - (report.maxEpoch - 1)),
    ageMs:
      times.failoverTimeMs !== undefined && times.cutTimeMs !== undefined
        ? times.failoverTimeMs - times.cutTimeMs
        : null,
  };
}

// ---------------------------------------------------------------------------------------------------

interface EvalContext {
  history: WriteHistory;
  ops: HistoryOp[];
  disks: DiskObservations[];
  initialKey: number;
  cut: number | null;
  mode: CheckMode;
}

interface Evaluation {
  epoch: number;
  violations: Violation[];
  allowedTorn: number;
  epochEOps: { present: number; partial: number; absent: number };
}

function indexVersions(
  ops: HistoryOp[],
  diskId: number,
  blocks: number,
): { start: Int32Array; versions: Int32Array } {
  const start = new Int32Array(blocks + 1);
  for (const op of ops) {
    if (op.diskId !== diskId) continue;
    const end = Math.min(blocks, op.lba + op.blocks);
    for (let b = Math.max(0, op.lba); b < end; b++) start[b + 1] = (start[b + 1] as number) + 1;
  }
  for (let b = 0; b < blocks; b++) start[b + 1] = (start[b + 1] as number) + (start[b] as number);
  const versions = new Int32Array(start[blocks] as number);
  const fill = start.slice(0, blocks);
  ops.forEach((op, index) => {
    if (op.diskId !== diskId) return;
    const end = Math.min(blocks, op.lba + op.blocks);
    for (let b = Math.max(0, op.lba); b < end; b++) versions[(fill[b] as number)++] = index;
  });
  return { start, versions };
}

/** The epoch of writeId if it is a data write of this history covering (diskId, lba); null otherwise. */
function validEpoch(
  history: WriteHistory,
  writeId: number,
  diskId: number,
  lba: number,
  initialKey: number,
): number | null {
  if (writeId === INITIAL_WRITE_ID) return initialKey === INITIAL_WRITE_ID ? 0 : null;
  const op = history.op(writeId);
  if (!op || op.kind !== 'write' || op.diskId !== diskId || lba < op.lba || lba >= op.lba + op.blocks)
    return null;
  return op.epoch;
}

/** Observation keys a version may read as: a writeId, ZERO, and for TRIM whatever came before. */
function acceptOf(ctx: EvalContext, d: DiskObservations, b: number, i: number): number[] {
  const s = d.start[b] as number;
  const keys: number[] = [];
  for (let k = i; ; k--) {
    if (k < 0) {
      keys.push(ctx.initialKey);
      return keys;
    }
    const op = ctx.ops[d.versions[s + k] as number] as HistoryOp;
    if (op.kind === 'write') {
      keys.push(op.writeId);
      return keys;
    }
    keys.push(ZERO);
    if (op.kind === 'zero') return keys;
  }
}

function describeKey(ctx: EvalContext, key: number): string {
  if (key === ZERO) return 'zeros';
  if (key === INITIAL_WRITE_ID) return 'initial pattern';
  const op = ctx.history.op(key);
  return op ? `write ${key} (epoch ${op.epoch})` : `write ${key}`;
}

function describeKeys(ctx: EvalContext, keys: number[]): string {
  return [...new Set(keys)].map((k) => describeKey(ctx, k)).join(' or ');
}

function describeObservation(ctx: EvalContext, o: BlockObservation | number): string {
  if (typeof o === 'number') return describeKey(ctx, o);
  switch (o.kind) {
    case 'zero':
      return 'zeros';
    case 'block':
      return `block of write ${o.writeId} (epoch ${o.epoch}) stamped for disk ${o.diskId} lba ${o.lba}`;
    case 'foreign':
      return `block of another run (runTag ${o.runTag}, write ${o.writeId})`;
    case 'corrupt':
      return `corrupt: ${o.reason}`;
    case 'torn':
      return `torn: sectors ${o.sectors.map((s) => (s.kind === 'write' ? `w${s.writeId}` : s.kind)).join(',')}`;
  }
}

/** Kind of a special observation that is wrong whatever the epoch (null: torn, judged by the caller). */
function integrityKind(
  ctx: EvalContext,
  d: DiskObservations,
  b: number,
  o: BlockObservation,
): ViolationKind | null {
  switch (o.kind) {
    case 'corrupt':
      return 'CORRUPT';
    case 'foreign':
      return 'PHANTOM';
    case 'zero':
      return null;
    case 'block':
      return writeKind(ctx, o.writeId, d.diskId, b, o.epoch, o.diskId === d.diskId && o.lba === b);
    case 'torn':
      for (const s of o.sectors) {
        if (s.kind !== 'write') continue;
        const kind = writeKind(ctx, s.writeId, d.diskId, b, null, true);
        if (kind) return kind;
      }
      return null;
  }
}

function writeKind(
  ctx: EvalContext,
  writeId: number,
  diskId: number,
  b: number,
  headerEpoch: number | null,
  atOwnPlace: boolean,
): ViolationKind | null {
  if (writeId === INITIAL_WRITE_ID) {
    if (ctx.initialKey !== INITIAL_WRITE_ID) return 'PHANTOM';
    return atOwnPlace ? null : 'MISDIRECTED';
  }
  const op = ctx.history.op(writeId);
  if (!op || op.kind !== 'write') return 'PHANTOM';
  if (headerEpoch !== null && headerEpoch !== op.epoch) return 'PHANTOM';
  if (!atOwnPlace || op.diskId !== diskId || b < op.lba || b >= op.lba + op.blocks) return 'MISDIRECTED';
  return null;
}

/** Observation keys of a torn block's sectors (ZERO or writeId). */
function tornKeys(o: BlockObservation): number[] {
  return o.kind === 'torn' ? o.sectors.map((s) => (s.kind === 'write' ? s.writeId : ZERO)) : [];
}

function requiredOp(ctx: EvalContext, op: HistoryOp, flushed: Map<number, number>): boolean {
  if (ctx.cut === null || op.error !== undefined || op.kind === 'trim') return false;
  if (op.epoch <= (flushed.get(op.diskId) ?? 0)) return true;
  return op.fua && op.tAckMs !== null && op.tAckMs <= ctx.cut;
}

function flushedByDisk(ctx: EvalContext): Map<number, number> {
  const m = new Map<number, number>();
  if (ctx.cut === null) return m;
  for (const d of ctx.disks) m.set(d.diskId, ctx.history.flushedEpoch(ctx.cut, d.diskId));
  return m;
}

function requiredEpoch(ctx: EvalContext): number {
  const flushed = flushedByDisk(ctx);
  let e = 0;
  for (const op of ctx.ops) if (requiredOp(ctx, op, flushed) && op.epoch > e) e = op.epoch;
  return e;
}

function evaluateRecoveryPoint(ctx: EvalContext, E: number): Evaluation {
  const violations: Violation[] = [];
  const holeCandidates: Array<{ v: Violation; prevWriteId: number }> = [];
  const seenIntact = new Map<number, number>();
  /** opIndex -> blocks present / partial, for epoch-E ops. */
  const presence = new Map<
    number,
    { present: number; partial: number; firstMissing: [number, number] | null }
  >();
  let allowedTorn = 0;

  for (const d of ctx.disks) {
    for (let b = 0; b < d.blocks; b++) {
      const code = d.code[b] as number;
      if (code >= 0) seenIntact.set(code, (seenIntact.get(code) ?? 0) + 1);
      const s = d.start[b] as number;
      const n = (d.start[b + 1] as number) - s;
      if (n === 0 && code === ctx.initialKey) continue; // never written, initial content: the common case

      let prevI = -1;
      const curIs: number[] = [];
      for (let i = 0; i < n; i++) {
        const ep = (ctx.ops[d.versions[s + i] as number] as HistoryOp).epoch;
        if (ep < E) prevI = i;
        else if (ep === E) curIs.push(i);
      }
      const prevKeys = acceptOf(ctx, d, b, prevI);
      const curKeys = curIs.map((i) => acceptOf(ctx, d, b, i));
      const mark = (i: number, state: 'present' | 'partial' | 'absent'): void => {
        const opIndex = d.versions[s + i] as number;
        const p = presence.get(opIndex) ?? { present: 0, partial: 0, firstMissing: null };
        if (state === 'present') p.present++;
        else if (state === 'partial') p.partial++;
        if (state !== 'present' && !p.firstMissing) p.firstMissing = [d.diskId, b];
        presence.set(opIndex, p);
      };
      const expected = (): string =>
        describeKeys(ctx, [...prevKeys, ...curKeys.flat()]) +
        (curIs.length ? ` (epoch ${E} write optional)` : '');

      if (code !== SPECIAL) {
        let matchedCur = false;
        curIs.forEach((i, k) => {
          const ok = (curKeys[k] as number[]).includes(code);
          if (ok) matchedCur = true;
          mark(i, ok ? 'present' : 'absent');
        });
        if (matchedCur || prevKeys.includes(code)) continue;
        const v: Violation = {
          kind: 'HOLE',
          diskId: d.diskId,
          lba: b,
          expected: expected(),
          observed: describeKey(ctx, code),
        };
        violations.push(v);
        const prevOp = prevI >= 0 ? (ctx.ops[d.versions[s + prevI] as number] as HistoryOp) : null;
        if (prevOp && prevOp.kind === 'write' && prevOp.blocks > 1)
          holeCandidates.push({ v, prevWriteId: prevOp.writeId });
        continue;
      }

      const o = d.special.get(b) as BlockObservation;
      const kind = integrityKind(ctx, d, b, o);
      curIs.forEach((i) => mark(i, 'absent'));
      if (kind) {
        violations.push({
          kind,
          diskId: d.diskId,
          lba: b,
          expected: expected(),
          observed: describeObservation(ctx, o),
        });
        continue;
      }
      // A torn block of valid sectors: legal only if an epoch-E write (or a TRIM) is involved.
      const keys = tornKeys(o);
      const allAllowed = keys.every((k) => prevKeys.includes(k) || curKeys.some((c) => c.includes(k)));
      const involvesCur = curKeys.some((c) => keys.some((k) => c.includes(k) && !prevKeys.includes(k)));
      const prevIsTrim =
        prevI >= 0 && (ctx.ops[d.versions[s + prevI] as number] as HistoryOp).kind === 'trim';
      if (allAllowed && (involvesCur || prevIsTrim)) {
        allowedTorn++;
        curIs.forEach((i, k) => {
          if (keys.some((key) => (curKeys[k] as number[]).includes(key))) {
            const p = presence.get(d.versions[s + i] as number);
            if (p) p.partial++;
          }
        });
        continue;
      }
      violations.push({
        kind: 'TORN',
        diskId: d.diskId,
        lba: b,
        expected: expected(),
        observed: describeObservation(ctx, o),
      });
    }
  }

  // A missing block of an earlier-epoch multi-block write that is visible elsewhere: the write is torn.
  for (const { v, prevWriteId } of holeCandidates) {
    if ((seenIntact.get(prevWriteId) ?? 0) > 0) {
      v.kind = 'TORN';
      v.observed += ` (write ${prevWriteId} is present on other blocks)`;
    }
  }

  // Durability.
  const flushed = flushedByDisk(ctx);
  const epochEOps = { present: 0, partial: 0, absent: 0 };
  ctx.ops.forEach((op, index) => {
    if (op.epoch === E) {
      const p = presence.get(index);
      if (p && p.present === op.blocks) epochEOps.present++;
      else if (p && (p.present > 0 || p.partial > 0)) epochEOps.partial++;
      else epochEOps.absent++;
    }
    if (!requiredOp(ctx, op, flushed)) return;
    const why = op.fua && op.epoch > (flushed.get(op.diskId) ?? 0) ? 'FUA-acknowledged' : 'flushed';
    if (op.epoch > E) {
      violations.push({
        kind: 'LOST_FLUSHED_WRITE',
        diskId: op.diskId,
        lba: op.lba,
        expected: `${op.kind} ${op.writeId} (epoch ${op.epoch}, ${why} before the cut)`,
        observed: `the image holds nothing after epoch ${E}`,
      });
    } else if (op.epoch === E) {
      const p = presence.get(index);
      if (!p || p.present < op.blocks) {
        const [diskId, lba] = p?.firstMissing ?? [op.diskId, op.lba];
        violations.push({
          kind: 'LOST_FLUSHED_WRITE',
          diskId,
          lba,
          expected: `${op.kind} ${op.writeId} (epoch ${op.epoch}, ${why} before the cut) on all ${op.blocks} blocks`,
          observed: `present on ${p?.present ?? 0} blocks`,
        });
      }
    }
  });
  violations.sort((a, b) => a.diskId - b.diskId || a.lba - b.lba);
  return { epoch: E, violations, allowedTorn, epochEOps };
}

function evaluateCrashOrPlanned(ctx: EvalContext): Evaluation {
  const violations: Violation[] = [];
  const flushed = flushedByDisk(ctx);
  let allowedTorn = 0;
  for (const d of ctx.disks) {
    for (let b = 0; b < d.blocks; b++) {
      const code = d.code[b] as number;
      const s = d.start[b] as number;
      const n = (d.start[b + 1] as number) - s;
      if (n === 0 && code === ctx.initialKey) continue;
      // Versions a legal image may show: from the last durable one (planned: the last one) onwards.
      let from = -1;
      let to = n - 1;
      if (ctx.mode === 'planned') from = n - 1;
      else {
        for (let i = 0; i < n; i++) {
          const op = ctx.ops[d.versions[s + i] as number] as HistoryOp;
          if (requiredOp(ctx, op, flushed)) from = i;
          if (ctx.cut !== null && op.tSubmitMs > ctx.cut && i > from) {
            to = i - 1;
            break;
          }
        }
      }
      const durableKeys = acceptOf(ctx, d, b, from);
      const laterKeys: number[] = [];
      for (let i = from + 1; i <= to; i++) laterKeys.push(...acceptOf(ctx, d, b, i));
      const allowed = [...durableKeys, ...laterKeys];
      const expected = (): string =>
        ctx.mode === 'planned'
          ? describeKeys(ctx, durableKeys)
          : `${describeKeys(ctx, allowed)} (durable: ${describeKeys(ctx, durableKeys)})`;
      if (code !== SPECIAL) {
        if (allowed.includes(code)) continue;
        const known =
          code === ZERO ||
          code === ctx.initialKey ||
          validEpoch(ctx.history, code, d.diskId, b, ctx.initialKey) !== null;
        violations.push({
          kind: known ? 'LOST_FLUSHED_WRITE' : 'PHANTOM',
          diskId: d.diskId,
          lba: b,
          expected: expected(),
          observed: describeKey(ctx, code),
        });
        continue;
      }
      const o = d.special.get(b) as BlockObservation;
      const kind = integrityKind(ctx, d, b, o);
      if (kind) {
        violations.push({
          kind,
          diskId: d.diskId,
          lba: b,
          expected: expected(),
          observed: describeObservation(ctx, o),
        });
        continue;
      }
      const keys = tornKeys(o);
      if (
        ctx.mode === 'crash' &&
        keys.every((k) => allowed.includes(k)) &&
        keys.some((k) => laterKeys.includes(k))
      ) {
        allowedTorn++;
        continue;
      }
      violations.push({
        kind: 'TORN',
        diskId: d.diskId,
        lba: b,
        expected: expected(),
        observed: describeObservation(ctx, o),
      });
    }
  }
  let epoch = 0;
  for (const d of ctx.disks)
    for (const c of d.code) if (c > 0) epoch = Math.max(epoch, ctx.history.op(c)?.epoch ?? 0);
  return { epoch, violations, allowedTorn, epochEOps: { present: 0, partial: 0, absent: 0 } };
}

/**
 * Validates a guest record log from any read function: a live NBD export, a disk image file, a
 * recovery point's export. The guest runs it at boot; failover tests run it on recovery points.
 *
 * The guest writes one record at a time (the next WRITE is issued only after the previous one
 * completed), so every crash-consistent image of its disk holds a contiguous run of records that ends
 * at the newest one, followed by at most one torn slot (the write in flight). The rules:
 *   - a disk with no valid superblock is valid and empty only if everything after the superblock is
 *     zero (blank, or torn while formatting); otherwise it is not a guest log (or a corrupt one);
 *   - all valid records form ONE run of consecutive seqs in circular slot order, ending at the newest;
 *   - never wrapped (newest seq < slotCount): the run starts at seq 1 in slot 0; after the newest
 *     record there may be one torn slot, then only zero slots;
 *   - wrapped (newest seq >= slotCount): every slot is part of the run except at most the one after the newest record, which may
 *     only be torn (a write that was overwriting the oldest record);
 *   - anything else (a zero or corrupt slot inside the run, a valid record outside it) is invalid, and
 *     the report names the first such slot.
 */
import { SecondsiteError } from '../../domain/errors.js';
import {
  decodeSlot,
  decodeSuperblock,
  isAllZero,
  SUPERBLOCK_BYTES,
  slotOffsetBytes,
  type GuestLogFormat,
  type GuestRecord,
} from './guest-log.format.js';

/** Reads exactly `lengthBytes` at `offsetBytes`. */
export type ReadFn = (offsetBytes: number, lengthBytes: number) => Promise<Buffer>;

export type GuestLogProblemKind =
  /** The superblock is not blank and does not decode. */
  | 'bad-superblock'
  /** No superblock, but the disk holds data: not a guest log (the guest refuses to format over it). */
  | 'not-blank'
  /** A never-written (zero) slot inside the run of records. */
  | 'hole'
  /** A torn or corrupt slot that is not the last slot of the log. */
  | 'corrupt-record'
  /** A valid record where the run says another one (or none) belongs: a gap or a stale record. */
  | 'out-of-order';

export interface GuestLogProblem {
  readonly kind: GuestLogProblemKind;
  /** The slot at fault, or null for the superblock. */
  readonly slot: number | null;
  readonly offsetBytes: number;
  readonly message: string;
}

export interface GuestLogReport {
  readonly valid: boolean;
  /** False for a blank disk (no superblock). */
  readonly formatted: boolean;
  readonly format: GuestLogFormat | null;
  /** Oldest retained record (0 when empty). */
  readonly firstSeq: number;
  /** Newest valid record (0 when empty). */
  readonly lastSeq: number;
  readonly recordCount: number;
  readonly lastRecord: GuestRecord | null;
  /** The slot after the newest record holds a torn write (allowed, it is the end of the log). */
  readonly tornTail: boolean;
  readonly problem: GuestLogProblem | null;
}

export interface ValidateOptions {
  /** Bytes per read call. Default 1 MiB. */
  readonly chunkBytes?: number;
}

/** Validates the log on a disk of `sizeBytes` read through `read`. Never throws for a bad log. */
export async function validateGuestLog(
  read: ReadFn,
  sizeBytes: number,
  options: ValidateOptions = {},
): Promise<GuestLogReport> {
  const chunkBytes = options.chunkBytes ?? 1024 * 1024;
  const sb = decodeSuperblock(await read(0, SUPERBLOCK_BYTES));
  if (sb.kind !== 'format') {
    // Blank disk, or a superblock torn while formatting (nothing else was written yet): both are empty.
    const dataAt = await firstNonZeroByte(read, SUPERBLOCK_BYTES, sizeBytes, chunkBytes);
    if (dataAt === null) return { ...empty(null, false), tornTail: sb.kind === 'invalid' };
    if (sb.kind === 'invalid')
      return failed(null, false, {
        kind: 'bad-superblock',
        slot: null,
        offsetBytes: 0,
        message: `the guest log superblock is corrupt (${sb.reason}) and the disk holds data at byte ${dataAt}`,
      });
    return failed(null, false, {
      kind: 'not-blank',
      slot: null,
      offsetBytes: dataAt,
      message: `the disk has no guest log superblock but holds data at byte ${dataAt}; it is not a guest log disk`,
    });
  }
  const f = sb.format;
  const n = f.slotCount;
  if (slotOffsetBytes(f, n) > sizeBytes)
    return failed(f, true, {
      kind: 'bad-superblock',
      slot: null,
      offsetBytes: 0,
      message: `the superblock describes ${n} slots of ${f.slotBytes} bytes, more than the disk of ${sizeBytes} bytes holds`,
    });

  // Classify every slot: 0 = zero, -1 = invalid, else the record's seq.
  const seqs = new Float64Array(n);
  const reasons = new Map<number, string>();
  const records = new Map<number, GuestRecord>();
  const slotsPerChunk = Math.max(1, Math.floor(chunkBytes / f.slotBytes));
  for (let first = 0; first < n; first += slotsPerChunk) {
    const count = Math.min(slotsPerChunk, n - first);
    const buf = await read(slotOffsetBytes(f, first), count * f.slotBytes);
    for (let k = 0; k < count; k++) {
      const slot = first + k;
      const c = decodeSlot(f, slot, buf.subarray(k * f.slotBytes, (k + 1) * f.slotBytes));
      if (c.kind === 'zero') seqs[slot] = 0;
      else if (c.kind === 'invalid') {
        seqs[slot] = -1;
        reasons.set(slot, c.reason);
      } else {
        seqs[slot] = c.record.seq;
        records.set(slot, c.record);
      }
    }
  }
  const at = (slot: number): number => seqs[slot] as number;

  let newestSlot = -1;
  let newestSeq = 0;
  for (let s = 0; s < n; s++)
    if (at(s) > newestSeq) {
      newestSeq = at(s);
      newestSlot = s;
    }

  const describe = (slot: number, expected: number | null): GuestLogProblem => {
    const v = at(slot);
    const offsetBytes = slotOffsetBytes(f, slot);
    const where = `slot ${slot} (byte ${offsetBytes})`;
    const want = expected === null ? 'nothing' : `record ${expected}`;
    if (v === 0)
      return { kind: 'hole', slot, offsetBytes, message: `${where} is blank where ${want} belongs` };
    if (v < 0)
      return {
        kind: 'corrupt-record',
        slot,
        offsetBytes,
        message: `${where} is corrupt (${reasons.get(slot) ?? 'invalid'}) where ${want} belongs; only the slot after the newest record (${newestSeq}) may be torn`,
      };
    return {
      kind: 'out-of-order',
      slot,
      offsetBytes,
      message: `${where} holds record ${v} where ${want} belongs (newest record is ${newestSeq})`,
    };
  };

  if (newestSlot < 0) {
    // No record at all: one torn first write in slot 0 is the only thing allowed.
    for (let s = 0; s < n; s++) {
      if (at(s) === 0 || (s === 0 && at(s) < 0)) continue;
      return failed(f, true, describe(s, null));
    }
    return { ...empty(f, true), tornTail: at(0) < 0 };
  }

  // The run: walk back from the newest record while slots hold the expected seqs.
  let run = 0;
  while (run < n && newestSeq - run >= 1 && at((newestSlot - run + n) % n) === newestSeq - run) run++;
  const headSlot = (newestSlot + 1) % n;
  // The next write goes over an older record once every slot has been used.
  const wrapped = newestSeq >= n;
  let tornTail = false;
  if (!wrapped) {
    // The run must reach seq 1 (slot 0); after the newest: one torn slot at most, then zeros.
    if (run < newestSeq) {
      const b = newestSlot - run;
      return failed(f, true, describe(b, newestSeq - run));
    }
    for (let s = newestSlot + 1; s < n; s++) {
      if (at(s) === 0) continue;
      if (s === headSlot && at(s) < 0) {
        tornTail = true;
        continue;
      }
      return failed(f, true, describe(s, null));
    }
  } else if (run < n) {
    if (run < n - 1) {
      const b = (newestSlot - run + n) % n;
      return failed(f, true, describe(b, newestSeq - run));
    }
    // run === n - 1: the slot after the newest record must be a torn overwrite of the oldest.
    if (at(headSlot) >= 0) return failed(f, true, describe(headSlot, newestSeq - run));
    tornTail = true;
  }
  return {
    valid: true,
    formatted: true,
    format: f,
    firstSeq: newestSeq - run + 1,
    lastSeq: newestSeq,
    recordCount: run,
    lastRecord: records.get(newestSlot) ?? null,
    tornTail,
    problem: null,
  };
}

/** Throws SECONDSITE_ERR_INVALID_STATE with the report's problem unless the log is valid. */
export function assertGuestLogValid(report: GuestLogReport, what = 'the guest log'): void {
  if (report.valid) return;
  const p = report.problem;
  throw new SecondsiteError(
    'SECONDSITE_ERR_INVALID_STATE',
    `${what} is invalid: ${p?.message ?? 'unknown problem'}; the disk does not hold a consistent guest log (restore it from a recovery point or start the guest on a blank disk)`,
    { problem: p },
  );
}

async function firstNonZeroByte(
  read: ReadFn,
  fromBytes: number,
  toBytes: number,
  chunkBytes: number,
): Promise<number | null> {
  for (let at = fromBytes; at < toBytes; at += chunkBytes) {
    const buf = await read(at, Math.min(chunkBytes, toBytes - at));
    if (!isAllZero(buf)) {
      let i = 0;
      while (buf[i] === 0) i++;
      return at + i;
    }
  }
  return null;
}

function empty(format: GuestLogFormat | null, formatted: boolean): GuestLogReport {
  return {
    valid: true,
    formatted,
    format,
    firstSeq: 0,
    lastSeq: 0,
    recordCount: 0,
    lastRecord: null,
    tornTail: false,
    problem: null,
  };
}

function failed(format: GuestLogFormat | null, formatted: boolean, problem: GuestLogProblem): GuestLogReport {
  return { ...empty(format, formatted), valid: false, problem };
}

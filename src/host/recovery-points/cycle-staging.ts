/**
 * The staging of one cycle (a CycleWriter): records appended to `staging/redo.log`, durable per
 * `sync()`, resumable by reopening with the same (cycleId, epoch). `progress()` reports only what a
 * completed `sync()` made durable, so the sender never skips a range that a power cut could lose.
 * Any failed write or sync breaks the writer (the log may now have a hole); reopen it to resume.
 * Writes may go on while a sync runs: a `sync()` covers exactly the records whose write was started
 * before it was called (a prefix of the log), and syncs complete in call order, so a receiver can keep
 * staging while the previous sync's datasync is in flight and still report only durable progress.
 * Records staged by earlier cycles and adopted by this one (recovery-points.md section 4) are applied
 * at commit like the others but reported by `adopted()`, not `progress()`.
 *
 * In place (a store's first cycle, recovery-points.md section 4.1): chunks are written straight into
 * the bases and zero ranges punched there; a `sync()` waits for the writes it covers, datasyncs their
 * bases and only then appends their metadata-only records to the log and datasyncs it, so a durable
 * record always means durable bytes. Overlapping writes are issued one after the other.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { StorageFile } from '../storage/storage.js';
import { coalescedRanges, ExtentMap, sliceRedoSource, type RedoSource } from './extent-map.js';
import { encodeRedoRecord, encodeRedoRecordParts, type RedoEntry, type RedoScan } from './redo-log.js';
import type { CycleWriter, RecoveryPointInfo, StagedProgress } from './replica-store.js';

export interface StagingHost {
  /** Current size of a disk, undefined when the relationship has no such disk. */
  diskSizeBytes(diskId: string): number | undefined;
  commitStaged(writer: CycleStaging, meta: Parameters<CycleWriter['commit']>[0]): Promise<RecoveryPointInfo>;
  discardStaged(writer: CycleStaging): Promise<void>;
  /** The base image of a disk (an in-place staging writes and reads it). */
  baseFile(diskId: string): StorageFile;
  /** A base datasync of an in-place staging failed: that log must not be resumed or adopted. */
  inPlaceSyncFailed(writer: CycleStaging): void;
}

export class CycleStaging implements CycleWriter {
  private appendPosBytes: number;
  private readonly entriesSynced: RedoEntry[];
  /** Completed but unsynced appends, with their log positions (writes may complete out of order). */
  private entriesPending: Array<{ posBytes: number; entry: RedoEntry }> = [];
  /** Writes not yet completed, with their log positions (in place: their start sequence numbers). */
  private readonly inFlight = new Map<Promise<void>, number>();
  /** In place: completed writes whose records are not yet in the log, with their start sequence. */
  private inPlacePending: Array<{ seq: number; entry: RedoEntry }> = [];
  /** In place: writes not yet completed, with their ranges (an overlapping write waits for them). */
  private readonly inPlaceWrites = new Set<{
    diskId: string;
    from: number;
    to: number;
    done: Promise<void>;
  }>();
  private nextSeq = 0;
  /** The last sync asked for (syncs run one after the other, in call order). */
  private syncQueue: Promise<unknown> = Promise.resolve();
  /** Per disk, where the durable staged content of every range is (adopted or own, later wins). */
  private readonly syncedContent = new Map<string, ExtentMap<RedoSource>>();
  /** Per disk, ranges durably staged by this cycle. */
  private readonly ownRanges = new Map<string, ExtentMap<null>>();
  /** Per disk, ranges staged by earlier cycles and adopted by this one. */
  private readonly adoptedRanges = new Map<string, ExtentMap<null>>();
  private state: 'open' | 'broken' | 'closed' = 'open';
  /** Staged in place: the bytes go into the bases, the log holds metadata only. */
  readonly inPlace: boolean;
  /** How many of the synced entries (the first ones) were adopted from earlier cycles. */
  readonly adoptedEntryCount: number;
  /** Records (header included) covered by the last completed sync. */
  recordsSynced: number;
  /** Bytes of the log covered by the last completed sync. */
  syncedBytes: number;

  constructor(
    private readonly host: StagingHost,
    readonly file: StorageFile,
    readonly cycleId: string,
    readonly epoch: number,
    existing: {
      entries: RedoEntry[];
      adoptedEntries: number;
      validBytes: number;
      records: number;
      inPlace: boolean;
    },
  ) {
    this.inPlace = existing.inPlace;
    this.adoptedEntryCount = existing.adoptedEntries;
    this.appendPosBytes = existing.validBytes;
    this.entriesSynced = [...existing.entries];
    this.recordsSynced = existing.records;
    this.syncedBytes = existing.validBytes;
    existing.entries.forEach((e, i) => this.markSynced(e, i < existing.adoptedEntries));
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  async writeChunk(diskId: string, offsetBytes: number, data: Buffer, sha256?: Buffer): Promise<void> {
    this.checkRange(diskId, offsetBytes, data.length);
    if (data.length === 0) return;
    if (this.inPlace) {
      await this.stageInPlace(diskId, offsetBytes, data.length, { kind: 'base' }, (base) =>
        base.write(data, 0, data.length, offsetBytes),
      );
      return;
    }
    const record = encodeRedoRecordParts({ k: 'data', d: diskId, o: offsetBytes }, data, sha256);
    const pos = this.appendPosBytes;
    await this.append(record, {
      diskId,
      offsetBytes,
      lengthBytes: data.length,
      source: { kind: 'data', posBytes: pos + record.head.length },
    });
  }

  async zeroRange(diskId: string, offsetBytes: number, lengthBytes: number): Promise<void> {
    this.checkRange(diskId, offsetBytes, lengthBytes);
    if (lengthBytes === 0) return;
    if (this.inPlace) {
      await this.stageInPlace(diskId, offsetBytes, lengthBytes, { kind: 'zero' }, (base) =>
        base.punchHole(offsetBytes, lengthBytes),
      );
      return;
    }
    await this.append(encodeRedoRecordParts({ k: 'zero', d: diskId, o: offsetBytes, l: lengthBytes }), {
      diskId,
      offsetBytes,
      lengthBytes,
      source: { kind: 'zero' },
    });
  }

  async sync(): Promise<StagedProgress> {
    this.checkOpen();
    if (this.inPlace) {
      // This sync covers every write started before now.
      const uptoSeq = this.nextSeq;
      const writes = [...this.inFlight].filter(([, seq]) => seq < uptoSeq).map(([p]) => p);
      const run = this.syncQueue.then(() => this.syncInPlaceUpTo(uptoSeq, writes));
      this.syncQueue = run.catch(() => undefined);
      return await run;
    }
    // This sync covers every record started before now: [0, uptoBytes) of the log.
    const uptoBytes = this.appendPosBytes;
    const writes = [...this.inFlight].filter(([, pos]) => pos < uptoBytes).map(([p]) => p);
    const run = this.syncQueue.then(() => this.syncUpTo(uptoBytes, writes));
    this.syncQueue = run.catch(() => undefined);
    return await run;
  }

  private async syncUpTo(uptoBytes: number, writes: Array<Promise<void>>): Promise<StagedProgress> {
    this.checkOpen();
    await Promise.allSettled(writes);
    this.checkOpen(); // a failed write broke the writer: the log may have a hole
    const covered = this.entriesPending.filter((p) => p.posBytes < uptoBytes);
    this.entriesPending = this.entriesPending.filter((p) => p.posBytes >= uptoBytes);
    try {
      await this.file.datasync();
    } catch (e) {
      this.state = 'broken';
      throw ioError('sync of the staged cycle failed; reopen the cycle to resume', this.cycleId, e);
    }
    covered.sort((a, b) => a.posBytes - b.posBytes);
    for (const { entry } of covered) {
      this.entriesSynced.push(entry);
      this.markSynced(entry, false);
    }
    this.recordsSynced += covered.length;
    this.syncedBytes = Math.max(this.syncedBytes, uptoBytes);
    return this.progress();
  }

  /** In place: datasync the covered writes' bases, then append their records and datasync the log. */
  private async syncInPlaceUpTo(uptoSeq: number, writes: Array<Promise<void>>): Promise<StagedProgress> {
    this.checkOpen();
    await Promise.allSettled(writes);
    this.checkOpen(); // a failed write broke the writer
    const covered = this.inPlacePending.filter((p) => p.seq < uptoSeq).sort((a, b) => a.seq - b.seq);
    this.inPlacePending = this.inPlacePending.filter((p) => p.seq >= uptoSeq);
    try {
      for (const diskId of new Set(covered.map((c) => c.entry.diskId)))
        await this.host.baseFile(diskId).datasync();
    } catch (e) {
      this.state = 'broken';
      this.host.inPlaceSyncFailed(this);
      throw ioError('sync of a base image failed; the first cycle must be sent again', this.cycleId, e);
    }
    if (covered.length > 0) {
      const records = Buffer.concat(covered.map((c) => encodeRedoRecord(inPlaceMeta(c.entry))));
      const pos = this.appendPosBytes;
      this.appendPosBytes += records.length;
      try {
        await this.file.write(records, 0, records.length, pos);
        await this.file.datasync();
      } catch (e) {
        this.state = 'broken';
        throw ioError('sync of the staged cycle failed; reopen the cycle to resume', this.cycleId, e);
      }
    }
    for (const { entry } of covered) {
      this.entriesSynced.push(entry);
      this.markSynced(entry, false);
    }
    this.recordsSynced += covered.length;
    this.syncedBytes = this.appendPosBytes;
    return this.progress();
  }

  progress(): StagedProgress {
    return { cycleId: this.cycleId, staged: rangesByDisk(this.ownRanges) };
  }

  adopted(): StagedProgress['staged'] {
    return rangesByDisk(this.adoptedRanges);
  }

  async overlayStaged(diskId: string, offsetBytes: number, target: Buffer): Promise<void> {
    const map = this.syncedContent.get(diskId);
    if (map === undefined) return;
    for (const piece of map.covered(offsetBytes, target.length)) {
      const at = piece.offsetBytes - offsetBytes;
      const source = piece.value;
      if (source.kind === 'zero') {
        target.fill(0, at, at + piece.lengthBytes);
        continue;
      }
      const n =
        source.kind === 'base'
          ? await this.host.baseFile(diskId).read(target, at, piece.lengthBytes, piece.offsetBytes)
          : await this.file.read(target, at, piece.lengthBytes, source.posBytes);
      if (n !== piece.lengthBytes) {
        throw ioError(
          'the staging log is shorter than its records say; reopen the cycle',
          this.cycleId,
          null,
        );
      }
    }
  }

  async commit(meta: Parameters<CycleWriter['commit']>[0]): Promise<RecoveryPointInfo> {
    this.checkOpen();
    return await this.host.commitStaged(this, meta);
  }

  async discard(): Promise<void> {
    if (this.state === 'closed') return;
    await this.host.discardStaged(this);
  }

  /** Entries made durable so far, in log order (later win). */
  syncedEntries(): readonly RedoEntry[] {
    return this.entriesSynced;
  }

  /**
   * What a scan of the log would find in its durable prefix, from memory: the head, every synced
   * record (the adopted ones first) and where the last completed sync ended. Null unless the writer
   * is open (never broken by a failed write or sync) and stages into a log (not in place).
   */
  durablePrefix(): RedoScan | null {
    if (this.state !== 'open' || this.inPlace) return null;
    return {
      head: { cycleId: this.cycleId, epoch: this.epoch },
      inPlace: false,
      entries: [...this.entriesSynced],
      adoptedEntries: this.adoptedEntryCount,
      records: this.recordsSynced,
      validBytes: this.syncedBytes,
    };
  }

  /**
   * Closes the writer (after commit or discard, or when another cycle replaces it). In place, the
   * records of completed writes are first made durable (a sync), as a log keeps them in the page cache.
   */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    if (this.inPlace && this.state === 'open') {
      await this.sync().catch(() => undefined);
      // another close() may have finished during the sync
      if ((this.state as CycleStaging['state']) === 'closed') return;
    }
    this.state = 'closed';
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.keys()]);
    await this.file.close();
  }

  /** Appends one record (header + meta, then the payload, written side by side without a copy). */
  private async append(record: { head: Buffer; payload: Buffer }, entry: RedoEntry): Promise<void> {
    const pos = this.appendPosBytes;
    const { head, payload } = record;
    this.appendPosBytes += head.length + payload.length;
    const written =
      payload.length === 0
        ? this.file.write(head, 0, head.length, pos)
        : Promise.all([
            this.file.write(head, 0, head.length, pos),
            this.file.write(payload, 0, payload.length, pos + head.length),
          ]);
    const p = written.then(
      () => {
        this.entriesPending.push({ posBytes: pos, entry });
      },
      (e: unknown) => {
        this.state = 'broken';
        throw ioError('writing a staged chunk failed; reopen the cycle to resume', this.cycleId, e);
      },
    );
    this.inFlight.set(p, pos);
    try {
      await p;
    } finally {
      this.inFlight.delete(p);
    }
  }

  /** Writes (or punches) one range into its base, after any overlapping write still in flight. */
  private async stageInPlace(
    diskId: string,
    offsetBytes: number,
    lengthBytes: number,
    source: RedoSource,
    io: (base: StorageFile) => Promise<void>,
  ): Promise<void> {
    const seq = this.nextSeq++;
    const from = offsetBytes;
    const to = offsetBytes + lengthBytes;
    const before = [...this.inPlaceWrites]
      .filter((w) => w.diskId === diskId && w.from < to && from < w.to)
      .map((w) => w.done);
    const entry: RedoEntry = { diskId, offsetBytes, lengthBytes, source };
    const p = (async (): Promise<void> => {
      if (before.length > 0) await Promise.allSettled(before);
      this.checkOpen();
      await io(this.host.baseFile(diskId));
    })().then(
      () => {
        this.inPlacePending.push({ seq, entry });
      },
      (e: unknown) => {
        if (this.state === 'open') this.state = 'broken';
        throw ioError('writing a staged chunk failed; reopen the cycle to resume', this.cycleId, e);
      },
    );
    const write = { diskId, from, to, done: p.catch(() => undefined) };
    this.inPlaceWrites.add(write);
    this.inFlight.set(p, seq);
    try {
      await p;
    } finally {
      this.inFlight.delete(p);
      this.inPlaceWrites.delete(write);
    }
  }

  private markSynced(e: RedoEntry, adopted: boolean): void {
    let content = this.syncedContent.get(e.diskId);
    if (content === undefined) {
      content = new ExtentMap<RedoSource>(sliceRedoSource);
      this.syncedContent.set(e.diskId, content);
    }
    content.set(e.offsetBytes, e.lengthBytes, e.source);
    const ranges = adopted ? this.adoptedRanges : this.ownRanges;
    let m = ranges.get(e.diskId);
    if (m === undefined) {
      m = new ExtentMap<null>(() => null);
      ranges.set(e.diskId, m);
    }
    m.set(e.offsetBytes, e.lengthBytes, null);
  }

  private checkOpen(): void {
    if (this.state !== 'open') {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `the staging of cycle ${this.cycleId} is ${this.state}; call beginCycle again to resume or start a cycle`,
        { cycleId: this.cycleId, state: this.state },
      );
    }
  }

  private checkRange(diskId: string, offsetBytes: number, lengthBytes: number): void {
    this.checkOpen();
    const size = this.host.diskSizeBytes(diskId);
    if (size === undefined) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `disk ${diskId} is not part of this relationship; call ensureDisk first`,
        { diskId },
      );
    }
    if (
      !Number.isSafeInteger(offsetBytes) ||
      offsetBytes < 0 ||
      lengthBytes < 0 ||
      offsetBytes + lengthBytes > size
    ) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `range [${offsetBytes}, +${lengthBytes}) is outside disk ${diskId} of ${size} bytes`,
        { diskId, offsetBytes, lengthBytes, sizeBytes: size },
      );
    }
  }
}

/** The metadata-only record of an in-place write: `base` for data, `zero` for a punched range. */
function inPlaceMeta(e: RedoEntry): Parameters<typeof encodeRedoRecord>[0] {
  return e.source.kind === 'zero'
    ? { k: 'zero', d: e.diskId, o: e.offsetBytes, l: e.lengthBytes }
    : { k: 'base', d: e.diskId, o: e.offsetBytes, l: e.lengthBytes };
}

function rangesByDisk(maps: Map<string, ExtentMap<null>>): StagedProgress['staged'] {
  const out: Record<string, Array<{ offsetBytes: number; lengthBytes: number }>> = {};
  for (const [diskId, map] of maps) out[diskId] = coalescedRanges(map);
  return out;
}

function ioError(message: string, cycleId: string, cause: unknown): SecondsiteError {
  return new SecondsiteError('SECONDSITE_ERR_IO', message, { cycleId }, { cause });
}

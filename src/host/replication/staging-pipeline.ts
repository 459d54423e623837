/**
 * Keeps a cycle's staging busy while the receiver goes on reading frames (docs/design/replication.md,
 * invariant 9). Chunk writes are started without waiting for the previous one (at most
 * `maxWritesInFlight` at a time), and an ACK is a `CycleWriter.sync()` called right after the acked
 * frame's write was started, sent once that sync returned. `sync()` covers every record whose write was
 * started before it was called and syncs complete in call order, so every ACK still reports only
 * durable progress and ACKs go out in seq order, while the next frames are received, checked and
 * written during the datasync.
 *
 * The first failure (a write, a sync or sending an ACK) is kept: it goes to `onFailure` at once (the
 * session fails the connection, so a sender waiting for an ACK hears of it now, not at its timeout),
 * and every later call throws it. `drain()` waits for all writes and ACKs and throws it too.
 */
import type { CycleWriter, StagedProgress } from '../recovery-points/replica-store.js';

export class StagingPipeline {
  private readonly writes = new Set<Promise<void>>();
  private acks: Promise<void> = Promise.resolve();
  private failure: { error: unknown } | null = null;

  constructor(
    private readonly writer: CycleWriter,
    private readonly sendAck: (seq: number, progress: StagedProgress) => Promise<void>,
    private readonly onFailure: (e: unknown) => void,
    private readonly maxWritesInFlight = 4,
  ) {}

  /** Starts a staging write (`writeChunk` / `zeroRange`); waits only while too many are in flight. */
  async stage(start: (writer: CycleWriter) => Promise<void>): Promise<void> {
    this.throwIfFailed();
    const p = call(() => start(this.writer)).catch((e: unknown) => this.fail(e));
    this.writes.add(p);
    void p.finally(() => this.writes.delete(p));
    while (this.writes.size >= this.maxWritesInFlight) await Promise.race(this.writes);
    this.throwIfFailed();
  }

  /** Syncs everything staged so far and, once that is durable, acknowledges `seq`. Does not wait. */
  ack(seq: number): void {
    this.throwIfFailed();
    const synced = call(() => this.writer.sync());
    synced.catch(() => undefined); // observed below, in order
    this.acks = this.acks
      .then(async () => {
        const progress = await synced;
        if (this.failure === null) await this.sendAck(seq, progress);
      })
      .catch((e: unknown) => this.fail(e));
  }

  /** Waits for every started write and ACK; throws the first failure. */
  async drain(): Promise<void> {
    while (this.writes.size > 0) await Promise.allSettled([...this.writes]);
    await this.acks;
    this.throwIfFailed();
  }

  private fail(e: unknown): void {
    if (this.failure !== null) return;
    this.failure = { error: e };
    this.onFailure(e);
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure.error;
  }
}

/** Calls `f` now; a synchronous throw becomes a rejected promise. */
function call<T>(f: () => Promise<T>): Promise<T> {
  try {
    return f();
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
}

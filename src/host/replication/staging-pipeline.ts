/**
 * Keeps a cycle's staging busy while the receiver goes on reading frames (docs/design/replication.md,
 * invariant 9). Each frame's chunk is checked first (`ready`: decompression and the chunk SHA-256 run
 * on the libuv threadpool, several frames at a time), then staged strictly in frame order, and its
 * write is started without waiting for the previous one (at most `maxBusy` frames checking or writing
 * at a time). An ACK is a `CycleWriter.sync()` called right after the acked frame's write was started,
 * sent once that sync returned. `sync()` covers every record whose write was started before it was
 * called and syncs complete in call order, so every ACK still reports only durable progress and ACKs
 * go out in seq order, while the next frames are received, checked and written during the datasync.
 * Nothing is staged from a frame whose check failed, nor from any frame after it.
 *
 * The first failure (a check, a write, a sync or sending an ACK) is kept: it goes to `onFailure` at
 * once (the session fails the connection, so a sender waiting for an ACK hears of it now, not at its
 * timeout), and every later call throws it. `drain()` waits for everything and throws it too.
 */
import type { CycleWriter, StagedProgress } from '../recovery-points/replica-store.js';

export class StagingPipeline {
  /** Frames being checked or written (bounded by `maxBusy`). */
  private readonly busy = new Set<Promise<void>>();
  private readonly writes = new Set<Promise<void>>();
  /** Resolves once the last frame handed to `stage` started its write (or failed). */
  private order: Promise<void> = Promise.resolve();
  private acks: Promise<void> = Promise.resolve();
  private failure: { error: unknown } | null = null;

  constructor(
    private readonly writer: CycleWriter,
    private readonly sendAck: (seq: number, progress: StagedProgress) => Promise<void>,
    private readonly onFailure: (e: unknown) => void,
    private readonly maxBusy = 8,
  ) {}

  /**
   * Stages one frame: once `ready` resolved (its check passed) and every earlier frame started its
   * write, starts `start(writer, value)` (`writeChunk` / `zeroRange`) and, with `ackSeq`, asks for the
   * ACK of that seq. Waits only while too many frames are busy.
   */
  async stage<T>(
    ready: Promise<T> | T,
    start: (writer: CycleWriter, value: T) => Promise<void>,
    ackSeq?: number,
  ): Promise<void> {
    this.throwIfFailed();
    const previous = this.order;
    const entry = (async (): Promise<void> => {
      const value = await ready;
      await previous;
      if (this.failure !== null) return;
      const w = call(() => start(this.writer, value)).catch((e: unknown) => this.fail(e));
      this.writes.add(w);
      void w.finally(() => this.writes.delete(w));
      if (ackSeq !== undefined) this.ack(ackSeq);
    })().catch((e: unknown) => this.fail(e));
    this.order = entry;
    this.busy.add(entry);
    void entry.finally(() => this.busy.delete(entry));
    while (this.busy.size + this.writes.size >= this.maxBusy) {
      await Promise.race([...this.busy, ...this.writes]);
    }
    this.throwIfFailed();
  }

  /** Syncs every write started so far and, once that is durable, acknowledges `seq`. Does not wait. */
  private ack(seq: number): void {
    if (this.failure !== null) return;
    const synced = call(() => this.writer.sync());
    synced.catch(() => undefined); // observed below, in order
    this.acks = this.acks
      .then(async () => {
        const progress = await synced;
        if (this.failure === null) await this.sendAck(seq, progress);
      })
      .catch((e: unknown) => this.fail(e));
  }

  /** Waits for every frame handed to `stage`, its write and its ACK; throws the first failure. */
  async drain(): Promise<void> {
    await this.order;
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

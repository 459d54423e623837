/**
 * The storage shim: every byte of disk data and metadata the host agent reads or writes goes through
 * this interface, never through `fs` directly. Production uses `NodeStorage` (plain files); crash tests
 * use the testing kit's power-cut storage, which keeps unsynced writes in memory and can drop them,
 * tear them or fail a sync, so every write path can be proved against simulated power loss.
 *
 * Durability contract (the one real file systems give):
 *   - data written to a file is durable only after `datasync()` on that file returns;
 *   - a created, renamed or unlinked name is durable only after `syncDir()` on its directory returns;
 *   - `rename` atomically replaces the target name.
 * A failed `datasync()` is fatal for that file: the caller must not retry it and report success
 * (the "fsyncgate" lesson); it marks the file suspect and requires a resync.
 */
/** One write or read of a batch (`StorageFile.writeScattered`, `readScattered`). */
export interface PositionedBuffer {
  readonly data: Buffer;
  readonly positionBytes: number;
}

export interface StorageFile {
  readonly path: string;
  /** Reads up to `lengthBytes` at `positionBytes` into `buf[bufOffset..]`; returns bytes read (short at EOF). */
  read(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): Promise<number>;
  /** Writes all of `buf[bufOffset .. bufOffset+lengthBytes)` at `positionBytes`, extending the file if needed. */
  write(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): Promise<void>;
  /**
   * Optional: writes all of `buf[bufOffset .. bufOffset+lengthBytes)` at `positionBytes` synchronously on
   * the calling thread (no thread-pool round trip). It blocks the event loop for as long as the kernel
   * takes, so callers use it only for small writes and stop when it turns slow. Durability as `write`
   * (none before `datasync`). Implementations without a cheap synchronous path leave it out.
   */
  writeNow?(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): void;
  /**
   * Optional: writes the buffers back to back from `positionBytes` in one call (pwritev), as `write` would
   * write their concatenation. Implementations without a vectored write leave it out.
   */
  writev?(buffers: readonly Buffer[], positionBytes: number): Promise<void>;
  /**
   * Optional: writes each buffer at its own position, in array order, with one thread-pool hand-off for
   * all of them; resolves with one entry per write: undefined when all its bytes were written, else its
   * error (one write failing does not stop the others). The buffers must not change until it settles.
   * Implementations without a batched write leave it out.
   */
  writeScattered?(writes: readonly PositionedBuffer[]): Promise<Array<Error | undefined>>;
  /**
   * Optional: fills each buffer from its own position, with one thread-pool hand-off for all; resolves
   * with one entry per read: the bytes read (short only at end of file) or its error. Implementations
   * without a batched read leave it out.
   */
  readScattered?(reads: readonly PositionedBuffer[]): Promise<Array<number | Error>>;
  /** Makes all data written so far durable (fdatasync). */
  datasync(): Promise<void>;
  sizeBytes(): Promise<number>;
  /** Sets the file size; growing leaves a hole. */
  truncate(sizeBytes: number): Promise<void>;
  /**
   * Deallocates a range so it reads as zeros (punch hole, keep size). Where the file system cannot
   * punch holes it writes zeros instead; either way the range reads back as zeros.
   */
  punchHole(positionBytes: number, lengthBytes: number): Promise<void>;
  /**
   * The allocation map of [positionBytes, positionBytes+lengthBytes): sorted, non-overlapping extents
   * covering the whole range, each allocated (`data`) or a hole. Holes read as zeros. An implementation
   * that cannot tell reports everything as data.
   */
  allocation(positionBytes: number, lengthBytes: number): Promise<AllocationExtent[]>;
  close(): Promise<void>;
}

export interface AllocationExtent {
  offsetBytes: number;
  lengthBytes: number;
  data: boolean;
}

export type OpenMode =
  /** existing file, read only */
  | 'read'
  /** existing file, read and write */
  | 'readwrite'
  /** create if missing (not truncated), read and write */
  | 'create';

export interface Storage {
  open(path: string, mode: OpenMode): Promise<StorageFile>;
  /** Atomically renames `from` to `to`, replacing `to`. Durable after `syncDir` of both directories. */
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Makes creations, renames and unlinks in this directory durable (fsync of the directory). */
  syncDir(path: string): Promise<void>;
  /** Creates a directory and its parents (like mkdir -p); a no-op if it exists. */
  mkdir(path: string): Promise<void>;
  /** Names in a directory, sorted; [] if it does not exist. */
  list(path: string): Promise<string[]>;
  exists(path: string): Promise<boolean>;
  /** Removes a directory tree (like rm -rf); a no-op if missing. */
  removeTree(path: string): Promise<void>;
}

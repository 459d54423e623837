/**
 * A block device, nbdkit-style: the NBD server serves one, and filters (change tracking, stats, fault
 * injection, rate limit) wrap one and are one. Offsets and lengths are in bytes; callers have already
 * checked them against `sizeBytes` (the NBD server validates every request in one place).
 *
 * Semantics follow the NBD spec: a write completed before a `flush()` is durable when the flush
 * returns; a write with `fua` is durable when it returns. Nothing else orders writes.
 */
export interface BlockDevice {
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  /** Reads exactly `lengthBytes` at `offsetBytes` (zeros past the written data). */
  read(offsetBytes: number, lengthBytes: number): Promise<Buffer>;
  /**
   * Writes `data` at `offsetBytes`. The device keeps no reference to `data` once the returned promise
   * has settled (copy it if you need it later): the NBD server reuses payload buffers after that.
   */
  write(offsetBytes: number, data: Buffer, flags: WriteFlags): Promise<void>;
  flush(): Promise<void>;
  /** Hint that the range is no longer needed; it may read back as zeros or as its old content. */
  trim(offsetBytes: number, lengthBytes: number, flags: WriteFlags): Promise<void>;
  /** The range reads as zeros afterwards; `noHole` asks that it stays allocated. */
  writeZeroes(offsetBytes: number, lengthBytes: number, flags: ZeroFlags): Promise<void>;
  /**
   * Allocation of [offsetBytes, offsetBytes+lengthBytes): sorted, contiguous extents from offsetBytes;
   * may stop early (the caller asks again for the rest) but covers at least one byte.
   */
  extents(offsetBytes: number, lengthBytes: number): Promise<BlockExtent[]>;
  close(): Promise<void>;
}

export interface WriteFlags {
  /** Force unit access: durable before the call returns. */
  fua: boolean;
}

export interface ZeroFlags extends WriteFlags {
  noHole: boolean;
}

export interface BlockExtent {
  offsetBytes: number;
  lengthBytes: number;
  /** Not allocated (NBD_STATE_HOLE). */
  hole: boolean;
  /** Reads as zeros (NBD_STATE_ZERO). */
  zero: boolean;
}

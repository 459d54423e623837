/**
 * `WorkloadTarget`: the four calls the workload generator makes on one disk, so the same workload runs
 * over our NBD client, a `BlockDevice`, a plain file or an in-memory buffer. Offsets and lengths are in
 * bytes and always multiples of BLOCK_SIZE_BYTES. Semantics are NBD's: a write acknowledged before a
 * `flush()` was submitted is durable when the flush resolves; a `fua` write is durable when it resolves.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { BlockDevice } from '../../host/block-device/block-device.js';
import type { StorageFile } from '../../host/storage/storage.js';

export interface WorkloadTarget {
  write(offsetBytes: number, data: Buffer, opts: { fua: boolean }): Promise<void>;
  flush(): Promise<void>;
  /** The range reads as zeros afterwards. */
  writeZeroes(offsetBytes: number, lengthBytes: number, opts: { fua: boolean }): Promise<void>;
  /** The range may read as zeros or as its old content afterwards. */
  trim(offsetBytes: number, lengthBytes: number, opts: { fua: boolean }): Promise<void>;
}

/** Adapts a BlockDevice (the NBD server's export, or any filter stack). */
export function blockDeviceTarget(device: BlockDevice): WorkloadTarget {
  return {
    write: (offsetBytes, data, opts) => device.write(offsetBytes, data, { fua: opts.fua }),
    flush: () => device.flush(),
    writeZeroes: (offsetBytes, lengthBytes, opts) =>
      device.writeZeroes(offsetBytes, lengthBytes, { fua: opts.fua, noHole: false }),
    trim: (offsetBytes, lengthBytes, opts) => device.trim(offsetBytes, lengthBytes, { fua: opts.fua }),
  };
}

/**
 * A target over a plain file (created if missing, not truncated): write = pwrite, flush/FUA =
 * fdatasync, zeroes and trim write zeros. Close it with `close()`.
 */
export async function fileTarget(path: string): Promise<WorkloadTarget & { close(): Promise<void> }> {
  const handle: FileHandle = await open(path, 'a+').then(async (h) => {
    await h.close();
    return open(path, 'r+');
  });
  const writeAll = async (data: Buffer, positionBytes: number): Promise<void> => {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await handle.write(data, done, data.length - done, positionBytes + done);
      done += bytesWritten;
    }
  };
  const zeros = async (offsetBytes: number, lengthBytes: number, fua: boolean): Promise<void> => {
    await writeAll(Buffer.alloc(lengthBytes), offsetBytes);
    if (fua) await handle.datasync();
  };
  return {
    write: async (offsetBytes, data, opts) => {
      await writeAll(data, offsetBytes);
      if (opts.fua) await handle.datasync();
    },
    flush: () => handle.datasync(),
    writeZeroes: (offsetBytes, lengthBytes, opts) => zeros(offsetBytes, lengthBytes, opts.fua),
    trim: (offsetBytes, lengthBytes, opts) => zeros(offsetBytes, lengthBytes, opts.fua),
    close: () => handle.close(),
  };
}

/**
 * A target over a `StorageFile` (e.g. on PowerCutStorage): write = file write, flush and FUA =
 * datasync, zeroes and trim = punchHole. `syncOnFlush: false` makes a deliberately broken target that
 * acknowledges flushes without syncing (to prove a crash test catches it).
 */
export function storageFileTarget(
  file: StorageFile,
  options: { syncOnFlush?: boolean } = {},
): WorkloadTarget {
  const sync = options.syncOnFlush ?? true;
  return {
    write: async (offsetBytes, data, opts) => {
      await file.write(data, 0, data.length, offsetBytes);
      if (opts.fua && sync) await file.datasync();
    },
    flush: () => (sync ? file.datasync() : Promise.resolve()),
    writeZeroes: async (offsetBytes, lengthBytes, opts) => {
      await file.punchHole(offsetBytes, lengthBytes);
      if (opts.fua && sync) await file.datasync();
    },
    trim: async (offsetBytes, lengthBytes, opts) => {
      await file.punchHole(offsetBytes, lengthBytes);
      if (opts.fua && sync) await file.datasync();
    },
  };
}

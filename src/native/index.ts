/**
 * Loader for the `secondsite_native` addon (native/src/*.c): the sparse-file primitives Node's fs lacks.
 * Loaded lazily on first use, so code that never touches sparse files does not need it built. Errors
 * from the addon carry `code` = errno name (EOPNOTSUPP, ENOSPC, ...) like Node's own fs errors.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

interface NativeBinding {
  seekData(fd: number, offsetBytes: number): number;
  seekHole(fd: number, offsetBytes: number): number;
  punchHole(fd: number, offsetBytes: number, lengthBytes: number): Promise<void>;
  zeroRange(fd: number, offsetBytes: number, lengthBytes: number): Promise<void>;
  pwriteBatch(fd: number, buffers: Buffer[], offsets: number[]): Promise<number[]>;
  preadBatch(fd: number, buffers: Buffer[], offsets: number[]): Promise<number[]>;
}

/** Where scripts/setup.sh (node-gyp) puts the built addon. */
export const NATIVE_ADDON_PATH = fileURLToPath(
  new URL('../../native/build/Release/secondsite_native.node', import.meta.url),
);

let binding: NativeBinding | undefined;

function native(): NativeBinding {
  if (binding) return binding;
  const require = createRequire(import.meta.url);
  try {
    binding = require(NATIVE_ADDON_PATH) as NativeBinding;
  } catch (e) {
    throw new Error(
      `the native addon is missing or does not load (${NATIVE_ADDON_PATH}): run npm test or scripts/setup.sh to build it`,
      { cause: e },
    );
  }
  return binding;
}

/** Offset of the first data byte at or after `offsetBytes` (lseek SEEK_DATA), or -1 if there is none. */
export function seekData(fd: number, offsetBytes: number): number {
  return native().seekData(fd, offsetBytes);
}

/** Offset of the first hole at or after `offsetBytes` (lseek SEEK_HOLE); the file size at or past EOF. */
export function seekHole(fd: number, offsetBytes: number): number {
  return native().seekHole(fd, offsetBytes);
}

/** Deallocates the range, keeping the file size (fallocate PUNCH_HOLE|KEEP_SIZE); runs off the event loop. */
export function punchHole(fd: number, offsetBytes: number, lengthBytes: number): Promise<void> {
  return native().punchHole(fd, offsetBytes, lengthBytes);
}

/**
 * Makes the range read as zeros, keeping it allocated where the file system can (fallocate ZERO_RANGE),
 * else punching a hole; runs off the event loop.
 */
export function zeroRange(fd: number, offsetBytes: number, lengthBytes: number): Promise<void> {
  return native().zeroRange(fd, offsetBytes, lengthBytes);
}

/** pwriteBatch and preadBatch take at most this many buffers per call. */
export const IO_BATCH_MAX = 1024;

/**
 * One pwrite per buffer at its offset, in array order, as one piece of thread-pool work; resolves with
 * one entry per write: 0 when all its bytes were written, else the negative errno.
 */
export function pwriteBatch(fd: number, buffers: Buffer[], offsets: number[]): Promise<number[]> {
  return native().pwriteBatch(fd, buffers, offsets);
}

/**
 * One pread per buffer from its offset, as one piece of thread-pool work; resolves with one entry per
 * read: the bytes read (short only at end of file), else the negative errno.
 */
export function preadBatch(fd: number, buffers: Buffer[], offsets: number[]): Promise<number[]> {
  return native().preadBatch(fd, buffers, offsets);
}

/** The errno name of an addon or fs error (`'ENOSPC'`), or undefined. */
export function errnoCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string') return e.code;
  return undefined;
}

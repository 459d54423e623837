/**
 * `NodeStorage`: the production `Storage`, plain files through node:fs. Data calls use the fd-based
 * callback API wrapped in promises (cheaper per call than FileHandle); sparse-file calls (allocation map,
 * punch hole) and batches of scattered writes use the native addon (lseek SEEK_DATA/SEEK_HOLE,
 * fallocate, pwrite batches).
 *
 * Safety: files are opened with O_NOFOLLOW (a symlink planted as a disk or state file is refused), new
 * files get mode 0600, and with `confineTo` every path must stay inside that root, checked lexically and
 * by realpath of the nearest existing ancestor (a symlinked directory cannot lead outside). Errors from
 * the file system keep Node's `code` (ENOENT, ENOSPC, ...); a confinement violation is
 * SECONDSITE_ERR_UNSAFE_PATH. After a failed datasync the file refuses every later datasync
 * (fsyncgate: a retry could falsely succeed), so the caller must treat the file as suspect.
 */
import * as fs from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { getSystemErrorName } from 'node:util';
import { SecondsiteError } from '../../domain/errors.js';
import {
  errnoCode,
  IO_BATCH_MAX,
  punchHole,
  preadBatch,
  pwriteBatch,
  seekData,
  seekHole,
} from '../../native/index.js';
import type { AllocationExtent, OpenMode, PositionedBuffer, Storage, StorageFile } from './storage.js';

export interface NodeStorageOptions {
  /** If set, every path must resolve inside this directory (which must exist). */
  confineTo?: string;
}

const ZERO_CHUNK_BYTES = 1024 * 1024;
let zeroChunk: Buffer | undefined;

function zeros(): Buffer {
  zeroChunk ??= Buffer.alloc(ZERO_CHUNK_BYTES);
  return zeroChunk;
}

function call<T>(fn: (cb: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolvePromise, reject) => {
    fn((err, value) => (err ? reject(err) : resolvePromise(value)));
  });
}

export class NodeStorage implements Storage {
  private readonly root: string | undefined;
  private rootReal: string | undefined;

  constructor(options: NodeStorageOptions = {}) {
    this.root = options.confineTo === undefined ? undefined : resolve(options.confineTo);
  }

  async open(path: string, mode: OpenMode): Promise<StorageFile> {
    const checked = await this.check(path);
    const c = fs.constants;
    const flags =
      c.O_NOFOLLOW | (mode === 'read' ? c.O_RDONLY : mode === 'readwrite' ? c.O_RDWR : c.O_RDWR | c.O_CREAT);
    const fd = await call<number>((cb) => fs.open(checked, flags, 0o600, cb));
    return new NodeStorageFile(checked, fd);
  }

  async rename(from: string, to: string): Promise<void> {
    const a = await this.check(from);
    const b = await this.check(to);
    await call<void>((cb) => fs.rename(a, b, (err) => cb(err, undefined)));
  }

  async unlink(path: string): Promise<void> {
    const p = await this.check(path);
    await call<void>((cb) => fs.unlink(p, (err) => cb(err, undefined)));
  }

  async syncDir(path: string): Promise<void> {
    const p = await this.check(path);
    const fd = await call<number>((cb) => fs.open(p, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY, cb));
    try {
      await call<void>((cb) => fs.fsync(fd, (err) => cb(err, undefined)));
    } finally {
      await call<void>((cb) => fs.close(fd, (err) => cb(err, undefined)));
    }
  }

  async mkdir(path: string): Promise<void> {
    const p = await this.check(path);
    await fs.promises.mkdir(p, { recursive: true, mode: 0o700 });
  }

  async list(path: string): Promise<string[]> {
    const p = await this.check(path);
    try {
      return (await fs.promises.readdir(p)).sort();
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return [];
      throw e;
    }
  }

  async exists(path: string): Promise<boolean> {
    const p = await this.check(path);
    try {
      await fs.promises.lstat(p);
      return true;
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return false;
      throw e;
    }
  }

  async removeTree(path: string): Promise<void> {
    const p = await this.check(path);
    if (this.root !== undefined && p === this.root) {
      throw new SecondsiteError('SECONDSITE_ERR_UNSAFE_PATH', `refusing to remove the storage root ${p}`, {
        path: p,
      });
    }
    await fs.promises.rm(p, { recursive: true, force: true });
  }

  /** Returns the absolute path, after checking confinement (a no-op without `confineTo`). */
  private async check(path: string): Promise<string> {
    if (path.includes('\0')) {
      throw new SecondsiteError('SECONDSITE_ERR_UNSAFE_PATH', 'a path contains a NUL byte', { path });
    }
    const abs = resolve(path);
    if (this.root === undefined) return abs;
    if (!isInside(this.root, abs)) throw outside(path, this.root);
    this.rootReal ??= await fs.promises.realpath(this.root);
    // realpath of the nearest existing ancestor: symlinked directories must not lead outside the root.
    let probe = abs;
    for (;;) {
      try {
        const real = await fs.promises.realpath(probe);
        if (!isInside(this.rootReal, real)) throw outside(path, this.root);
        break;
      } catch (e) {
        if (errnoCode(e) !== 'ENOENT' || probe === dirname(probe)) throw e;
        probe = dirname(probe);
      }
    }
    return abs;
  }
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

function outside(path: string, root: string): SecondsiteError {
  return new SecondsiteError(
    'SECONDSITE_ERR_UNSAFE_PATH',
    `the path ${JSON.stringify(path)} leaves the storage root ${root}; use names inside the root`,
    { path, root },
  );
}

class NodeStorageFile implements StorageFile {
  private closed = false;
  private syncFailed: unknown = undefined;
  private punchUnsupported = false;
  private seekUnsupported = false;

  constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  async read(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): Promise<number> {
    this.assertOpen();
    let done = 0;
    while (done < lengthBytes) {
      const n = await this.readOnce(buf, bufOffset + done, lengthBytes - done, positionBytes + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  private readOnce(
    buf: Buffer,
    bufOffset: number,
    lengthBytes: number,
    positionBytes: number,
  ): Promise<number> {
    return new Promise<number>((resolvePromise, reject) => {
      fs.read(this.fd, buf, bufOffset, lengthBytes, positionBytes, (err, n) =>
        err ? reject(err) : resolvePromise(n),
      );
    });
  }

  async write(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): Promise<void> {
    this.assertOpen();
    let done = 0;
    while (done < lengthBytes) {
      done += await this.writeOnce(buf, bufOffset + done, lengthBytes - done, positionBytes + done);
    }
  }

  private writeOnce(
    buf: Buffer,
    bufOffset: number,
    lengthBytes: number,
    positionBytes: number,
  ): Promise<number> {
    return new Promise<number>((resolvePromise, reject) => {
      fs.write(this.fd, buf, bufOffset, lengthBytes, positionBytes, (err, n) =>
        err ? reject(err) : resolvePromise(n),
      );
    });
  }

  async writev(buffers: readonly Buffer[], positionBytes: number): Promise<void> {
    this.assertOpen();
    let total = 0;
    for (const b of buffers) total += b.length;
    const n = await new Promise<number>((resolvePromise, reject) => {
      fs.writev(this.fd, buffers as Buffer[], positionBytes, (err, written) =>
        err ? reject(err) : resolvePromise(written),
      );
    });
    if (n >= total) return;
    // A short vectored write (rare on regular files): the rest buffer by buffer.
    let skip = n;
    let at = positionBytes + n;
    for (const b of buffers) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      await this.write(b, skip, b.length - skip, at);
      at += b.length - skip;
      skip = 0;
    }
  }

  async writeScattered(writes: readonly PositionedBuffer[]): Promise<Array<Error | undefined>> {
    const results = await this.batch(pwriteBatch, writes);
    return results.map((r) => (r === 0 ? undefined : ioError(r, 'pwrite', this.path)));
  }

  async readScattered(reads: readonly PositionedBuffer[]): Promise<Array<number | Error>> {
    const results = await this.batch(preadBatch, reads);
    return results.map((r) => (r >= 0 ? r : ioError(r, 'pread', this.path)));
  }

  private async batch(
    call: (fd: number, buffers: Buffer[], offsets: number[]) => Promise<number[]>,
    items: readonly PositionedBuffer[],
  ): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < items.length; i += IO_BATCH_MAX) {
      this.assertOpen(); // also between parts: the fd number may be reused after a close
      const part = items.slice(i, i + IO_BATCH_MAX);
      out.push(
        ...(await call(
          this.fd,
          part.map((w) => w.data),
          part.map((w) => w.positionBytes),
        )),
      );
    }
    return out;
  }

  writeNow(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): void {
    this.assertOpen();
    let done = 0;
    while (done < lengthBytes) {
      done += fs.writeSync(this.fd, buf, bufOffset + done, lengthBytes - done, positionBytes + done);
    }
  }

  async datasync(): Promise<void> {
    this.assertOpen();
    if (this.syncFailed !== undefined) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_IO',
        `an earlier datasync of ${this.path} failed; its data cannot be trusted until the disk is resynced`,
        { path: this.path },
        { cause: this.syncFailed },
      );
    }
    try {
      await call<void>((cb) => fs.fdatasync(this.fd, (err) => cb(err, undefined)));
    } catch (e) {
      this.syncFailed = e;
      throw e;
    }
  }

  async sizeBytes(): Promise<number> {
    this.assertOpen();
    const st = await call<fs.Stats>((cb) => fs.fstat(this.fd, cb));
    return st.size;
  }

  async truncate(sizeBytes: number): Promise<void> {
    this.assertOpen();
    await call<void>((cb) => fs.ftruncate(this.fd, sizeBytes, (err) => cb(err, undefined)));
  }

  async punchHole(positionBytes: number, lengthBytes: number): Promise<void> {
    this.assertOpen();
    if (lengthBytes <= 0) return;
    if (!this.punchUnsupported) {
      try {
        await punchHole(this.fd, positionBytes, lengthBytes);
        return;
      } catch (e) {
        const code = errnoCode(e);
        if (code !== 'EOPNOTSUPP' && code !== 'ENOSYS' && code !== 'ENOTSUP') throw e;
        this.punchUnsupported = true;
      }
    }
    // No hole punching here: write zeros, but never past the end of the file (keep size).
    const end = Math.min(positionBytes + lengthBytes, await this.sizeBytes());
    for (let at = positionBytes; at < end; at += ZERO_CHUNK_BYTES) {
      await this.write(zeros(), 0, Math.min(ZERO_CHUNK_BYTES, end - at), at);
    }
  }

  // async so that errors surface as rejections; the lseeks themselves are synchronous and cheap.
  // eslint-disable-next-line @typescript-eslint/require-await
  async allocation(positionBytes: number, lengthBytes: number): Promise<AllocationExtent[]> {
    this.assertOpen();
    const end = positionBytes + lengthBytes;
    if (lengthBytes <= 0) return [];
    if (this.seekUnsupported) return [{ offsetBytes: positionBytes, lengthBytes, data: true }];
    const out: AllocationExtent[] = [];
    try {
      let at = positionBytes;
      while (at < end) {
        const dataAt = seekData(this.fd, at);
        if (dataAt < 0 || dataAt >= end) {
          out.push({ offsetBytes: at, lengthBytes: end - at, data: false });
          break;
        }
        if (dataAt > at) out.push({ offsetBytes: at, lengthBytes: dataAt - at, data: false });
        const holeAt = Math.min(seekHole(this.fd, dataAt), end);
        out.push({ offsetBytes: dataAt, lengthBytes: holeAt - dataAt, data: true });
        at = holeAt;
      }
    } catch (e) {
      const code = errnoCode(e);
      if (code !== 'EINVAL' && code !== 'EOPNOTSUPP' && code !== 'ENOTSUP') throw e;
      this.seekUnsupported = true;
      return [{ offsetBytes: positionBytes, lengthBytes, data: true }];
    }
    return out;
  }

  /** A closed fd number may already belong to another file: never use it again. */
  private assertOpen(): void {
    if (this.closed) {
      throw new SecondsiteError('SECONDSITE_ERR_INTERNAL', `${this.path} was used after close()`, {
        path: this.path,
      });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await call<void>((cb) => fs.close(this.fd, (err) => cb(err, undefined)));
  }
}

/** A failed read or write of a batch as the error Node's fs would give (code, errno, syscall, path). */
function ioError(negativeErrno: number, syscall: 'pread' | 'pwrite', path: string): Error {
  const code = getSystemErrorName(negativeErrno);
  return Object.assign(new Error(`${code}: ${syscall} failed, '${path}'`), {
    code,
    errno: negativeErrno,
    syscall,
    path,
  });
}

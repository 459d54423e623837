/**
 * `PowerCutStorage`: an in-memory `Storage` (src/host/storage/storage.ts) with a volatile cache, for
 * crash tests (data-safety.md 2.6.1, LazyFS in TypeScript). It keeps two states:
 *
 *   - durable: what a disk would hold after losing power now;
 *   - current: what running code sees (durable + every unsynced operation, in completion order).
 *
 * Unsynced file data (write, writeNow, writev, writeScattered, truncate, punchHole) becomes durable on
 * `datasync()` of that file.
 * Unsynced names (file creation by open 'create', rename, unlink, mkdir, removeTree) become durable on
 * `syncDir()` of a directory they touch (a rename touches both directories and stays atomic, as in a
 * journaling file system). `mkdir` is volatile like any name unless `{ durableMkdir: true }`.
 *
 * `powerCut(mode)` keeps the durable state plus, of the operations since their last sync:
 *   'none'          nothing;
 *   'random-subset' each independently with probability 1/2;
 *   'prefix'        a random prefix in completion order (dm-log-writes worst case);
 * with `tear: true` a kept (subset) or boundary (prefix) write is applied only partly, 512-byte sector
 * by sector. Then durable becomes current, every open handle dies (SECONDSITE_ERR_IO on use) and the
 * same object can be handed to a new instance of the code under test: that is the reboot. Names whose
 * directory did not survive are gone.
 *
 * `failNextSync(path)` makes the next `datasync()` of that file (or `syncDir()` of that directory) fail
 * with EIO, and its unsynced operations are dropped from the cache: they stay visible until a power cut
 * but will never become durable, and a later sync succeeds (Linux fsyncgate behaviour, which the code
 * under test must survive by never retrying and reporting success). `failNextWrite(path, code)` fails
 * the next write (e.g. ENOSPC). `allocation()` reports 4 KiB pages never written (or punched) as holes.
 * `armPowerCut(n, mode)` crashes at the (n+1)-th mutating call from now (enumerate crash points with
 * n = 0, 1, 2...): power stays off, every call fails (`isPowerLoss`), until `reboot()`.
 * Errors are Node-style (`code` ENOENT, EISDIR, EEXIST, EIO...) like NodeStorage's. Relative paths are
 * resolved against '/'. Seeded: `new PowerCutStorage({ seed })` makes every cut reproducible.
 */
import { dirname, posix } from 'node:path';
import { Rng } from '../../domain/random.js';
import { SecondsiteError } from '../../domain/errors.js';
import type {
  AllocationExtent,
  OpenMode,
  PositionedBuffer,
  Storage,
  StorageFile,
} from '../../host/storage/storage.js';

export type PowerCutMode = 'none' | 'random-subset' | 'prefix';

export interface PowerCutOptions {
  mode: PowerCutMode;
  /** Apply kept writes only partly, at 512-byte sector granularity. */
  tear?: boolean;
}

export interface PowerCutReport {
  /** Unsynced operations before the cut, and how many survived (fully or torn). */
  pending: number;
  kept: number;
  torn: number;
}

const PAGE_BYTES = 4096;
const SECTOR_BYTES = 512;

type DataOp =
  | { kind: 'write'; positionBytes: number; data: Buffer }
  | { kind: 'truncate'; sizeBytes: number }
  | { kind: 'punch'; positionBytes: number; lengthBytes: number };

type NameOp =
  | { kind: 'link'; path: string; inode: number }
  | { kind: 'unlink'; path: string }
  | { kind: 'rename'; from: string; to: string }
  | { kind: 'mkdir'; path: string }
  | { kind: 'rmtree'; path: string };

type Pending =
  | { seq: number; type: 'data'; inode: number; op: DataOp }
  | { seq: number; type: 'name'; dirs: string[]; op: NameOp };

/** Sparse file content in 4 KiB pages; a missing page is a hole. */
class Pages {
  pages = new Map<number, Buffer>();
  sizeBytes = 0;

  clone(): Pages {
    const p = new Pages();
    for (const [k, v] of this.pages) p.pages.set(k, Buffer.from(v));
    p.sizeBytes = this.sizeBytes;
    return p;
  }

  read(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): number {
    const n = Math.max(0, Math.min(lengthBytes, this.sizeBytes - positionBytes));
    for (let done = 0; done < n;) {
      const at = positionBytes + done;
      const page = Math.floor(at / PAGE_BYTES);
      const inPage = at % PAGE_BYTES;
      const len = Math.min(n - done, PAGE_BYTES - inPage);
      const src = this.pages.get(page);
      if (src) src.copy(buf, bufOffset + done, inPage, inPage + len);
      else buf.fill(0, bufOffset + done, bufOffset + done + len);
      done += len;
    }
    return n;
  }

  write(data: Buffer, positionBytes: number): void {
    for (let done = 0; done < data.length;) {
      const at = positionBytes + done;
      const page = Math.floor(at / PAGE_BYTES);
      const inPage = at % PAGE_BYTES;
      const len = Math.min(data.length - done, PAGE_BYTES - inPage);
      let dst = this.pages.get(page);
      if (!dst) {
        dst = Buffer.alloc(PAGE_BYTES);
        this.pages.set(page, dst);
      }
      data.copy(dst, inPage, done, done + len);
      done += len;
    }
    this.sizeBytes = Math.max(this.sizeBytes, positionBytes + data.length);
  }

  zero(positionBytes: number, endBytes: number): void {
    for (let at = positionBytes; at < endBytes;) {
      const page = Math.floor(at / PAGE_BYTES);
      const inPage = at % PAGE_BYTES;
      const len = Math.min(endBytes - at, PAGE_BYTES - inPage);
      if (len === PAGE_BYTES) this.pages.delete(page);
      else this.pages.get(page)?.fill(0, inPage, inPage + len);
      at += len;
    }
  }

  truncate(sizeBytes: number): void {
    if (sizeBytes < this.sizeBytes) {
      const firstGone = Math.ceil(sizeBytes / PAGE_BYTES);
      for (const k of [...this.pages.keys()]) if (k >= firstGone) this.pages.delete(k);
      if (sizeBytes % PAGE_BYTES !== 0)
        this.pages.get(Math.floor(sizeBytes / PAGE_BYTES))?.fill(0, sizeBytes % PAGE_BYTES);
    }
    this.sizeBytes = sizeBytes;
  }

  apply(op: DataOp): void {
    if (op.kind === 'write') this.write(op.data, op.positionBytes);
    else if (op.kind === 'truncate') this.truncate(op.sizeBytes);
    else this.zero(op.positionBytes, Math.min(op.positionBytes + op.lengthBytes, this.sizeBytes));
  }
}

/** A file-system namespace: file paths -> inode, and directories. */
class Names {
  files = new Map<string, number>();
  dirs = new Set<string>(['/']);

  clone(): Names {
    const n = new Names();
    n.files = new Map(this.files);
    n.dirs = new Set(this.dirs);
    return n;
  }

  apply(op: NameOp): void {
    switch (op.kind) {
      case 'link':
        this.files.set(op.path, op.inode);
        return;
      case 'unlink':
        this.files.delete(op.path);
        return;
      case 'mkdir':
        this.dirs.add(op.path);
        return;
      case 'rmtree':
        this.removeUnder(op.path);
        return;
      case 'rename': {
        const inode = this.files.get(op.from);
        if (inode !== undefined) {
          this.files.delete(op.from);
          this.files.set(op.to, inode);
          return;
        }
        if (!this.dirs.has(op.from)) return;
        const moved = new Map<string, number>();
        for (const [p, i] of this.files) if (under(p, op.from)) moved.set(op.to + p.slice(op.from.length), i);
        const movedDirs = [...this.dirs]
          .filter((d) => under(d, op.from))
          .map((d) => op.to + d.slice(op.from.length));
        this.removeUnder(op.from);
        this.removeUnder(op.to);
        for (const [p, i] of moved) this.files.set(p, i);
        for (const d of movedDirs) this.dirs.add(d);
        return;
      }
    }
  }

  removeUnder(path: string): void {
    for (const p of [...this.files.keys()]) if (under(p, path)) this.files.delete(p);
    for (const d of [...this.dirs]) if (d !== '/' && under(d, path)) this.dirs.delete(d);
  }

  /** Drops names whose parent directory does not exist (orphans after a partial cut). */
  prune(): void {
    for (const d of [...this.dirs].sort((a, b) => a.length - b.length)) {
      if (d !== '/' && !this.dirs.has(dirname(d))) this.removeUnder(d);
    }
    for (const p of [...this.files.keys()]) if (!this.dirs.has(dirname(p))) this.files.delete(p);
  }
}

function under(path: string, root: string): boolean {
  return path === root || path.startsWith(root === '/' ? '/' : root + '/');
}

function fsError(code: string, syscall: string, path: string): Error {
  const messages: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EISDIR: 'illegal operation on a directory',
    ENOTDIR: 'not a directory',
    EEXIST: 'file already exists',
    EIO: 'i/o error (injected by PowerCutStorage)',
    EBADF: 'bad file descriptor',
    ENOSPC: 'no space left on device (injected by PowerCutStorage)',
  };
  return Object.assign(new Error(`${code}: ${messages[code] ?? 'error'}, ${syscall} '${path}'`), {
    code,
    syscall,
    path,
  });
}

export class PowerCutStorage implements Storage {
  private rng: Rng;
  private durableNames = new Names();
  private currentNames = new Names();
  private durableData = new Map<number, Pages>();
  private currentData = new Map<number, Pages>();
  private pending: Pending[] = [];
  private seq = 0;
  private nextInode = 1;
  private generation = 0;
  private failSync = new Set<string>();
  private failWrite = new Map<string, string>();
  private armed: { remaining: number; cut: PowerCutOptions } | null = null;
  private off = false;
  private readonly durableMkdir: boolean;
  /** Power cuts so far. */
  cuts = 0;

  constructor(options: { seed?: number; durableMkdir?: boolean } = {}) {
    this.rng = new Rng(options.seed ?? 1);
    this.durableMkdir = options.durableMkdir ?? false;
  }

  // ---- test controls -------------------------------------------------------------------------------

  /** Loses power: see the file comment. Returns what happened to the unsynced operations. */
  powerCut(options: PowerCutOptions | PowerCutMode = 'none'): PowerCutReport {
    const { mode, tear = false } = typeof options === 'string' ? { mode: options } : options;
    const report: PowerCutReport = { pending: this.pending.length, kept: 0, torn: 0 };
    const prefix = mode === 'prefix' ? this.rng.int(this.pending.length + 1) : 0;
    this.pending.forEach((p, index) => {
      let keep: boolean;
      let tearThis = false;
      if (mode === 'none') keep = false;
      else if (mode === 'random-subset') {
        keep = this.rng.chance(0.5);
        tearThis = keep && tear && this.rng.chance(0.5);
      } else {
        keep = index < prefix;
        tearThis = tear && index === prefix;
      }
      if (tearThis && p.type === 'data' && p.op.kind === 'write') {
        this.applyTorn(p.inode, p.op);
        report.torn++;
      } else if (keep) {
        this.applyDurable(p);
        report.kept++;
      }
    });
    this.pending = [];
    this.durableNames.prune();
    this.currentNames = this.durableNames.clone();
    this.currentData = new Map([...this.durableData].map(([k, v]) => [k, v.clone()]));
    this.generation++;
    this.cuts++;
    this.failSync.clear();
    this.failWrite.clear();
    return report;
  }

  /** The next datasync of this file / syncDir of this directory fails with EIO and drops its cache. */
  failNextSync(path: string): void {
    this.failSync.add(norm(path));
  }

  /** The next write to this file fails with `code` (default ENOSPC) and writes nothing. */
  failNextWrite(path: string, code = 'ENOSPC'): void {
    this.failWrite.set(norm(path), code);
  }

  /**
   * Crash at a storage call: after `afterCalls` more mutating calls (write, truncate, punchHole,
   * datasync, open 'create' of a new file, rename, unlink, syncDir, mkdir, removeTree), the next one
   * cuts power with `cut` instead of running, and it and every later call (reads too) fail with a
   * power-loss error (`isPowerLoss`) until `reboot()`. Enumerate crash points by running the code under
   * test once per `afterCalls` = 0, 1, 2, ...
   */
  armPowerCut(afterCalls: number, cut: PowerCutOptions | PowerCutMode = 'none'): void {
    this.armed = { remaining: afterCalls, cut: typeof cut === 'string' ? { mode: cut } : cut };
  }

  /** True once an armed power cut has happened (until `reboot()`). */
  get poweredOff(): boolean {
    return this.off;
  }

  /** Powers the machine on again after an armed cut: calls work on what survived. */
  reboot(): void {
    this.off = false;
    this.armed = null;
  }

  /** Number of operations not yet durable. */
  get unsyncedOperations(): number {
    return this.pending.length;
  }

  /** A deep copy (durable, current and unsynced state, rng), to try several cuts from one state. */
  clone(seed?: number): PowerCutStorage {
    const c = new PowerCutStorage({ seed: seed ?? this.rng.nextU32(), durableMkdir: this.durableMkdir });
    c.durableNames = this.durableNames.clone();
    c.currentNames = this.currentNames.clone();
    c.durableData = new Map([...this.durableData].map(([k, v]) => [k, v.clone()]));
    c.currentData = new Map([...this.currentData].map(([k, v]) => [k, v.clone()]));
    c.pending = this.pending.map((p) => ({ ...p }));
    c.seq = this.seq;
    c.nextInode = this.nextInode;
    c.generation = this.generation + 1; // handles of the original are not valid on the copy
    return c;
  }

  /** Current content of a file (test convenience), or null if missing. */
  readFileSync(path: string): Buffer | null {
    const inode = this.currentNames.files.get(norm(path));
    if (inode === undefined) return null;
    const pages = this.currentData.get(inode) as Pages;
    const out = Buffer.alloc(pages.sizeBytes);
    pages.read(out, 0, pages.sizeBytes, 0);
    return out;
  }

  // ---- Storage -------------------------------------------------------------------------------------

  open(path: string, mode: OpenMode): Promise<StorageFile> {
    return attempt(() => {
      const p = norm(path);
      const creating = mode === 'create' && !this.currentNames.files.has(p) && !this.currentNames.dirs.has(p);
      this.gate(creating);
      if (this.currentNames.dirs.has(p)) throw fsError('EISDIR', 'open', p);
      let inode = this.currentNames.files.get(p);
      if (inode === undefined) {
        if (mode !== 'create' || !this.currentNames.dirs.has(dirname(p))) throw fsError('ENOENT', 'open', p);
        inode = this.nextInode++;
        this.durableData.set(inode, new Pages());
        this.currentData.set(inode, new Pages());
        this.nameOp({ kind: 'link', path: p, inode });
      }
      return new PowerCutFile(this, p, inode, mode === 'read', this.generation);
    });
  }

  rename(from: string, to: string): Promise<void> {
    return attempt(() => {
      this.gate(true);
      const a = norm(from);
      const b = norm(to);
      const isFile = this.currentNames.files.has(a);
      if (!isFile && !this.currentNames.dirs.has(a)) throw fsError('ENOENT', 'rename', a);
      if (!this.currentNames.dirs.has(dirname(b))) throw fsError('ENOENT', 'rename', b);
      if (isFile && this.currentNames.dirs.has(b)) throw fsError('EISDIR', 'rename', b);
      if (a !== b) this.nameOp({ kind: 'rename', from: a, to: b });
    });
  }

  unlink(path: string): Promise<void> {
    return attempt(() => {
      this.gate(true);
      const p = norm(path);
      if (this.currentNames.dirs.has(p)) throw fsError('EISDIR', 'unlink', p);
      if (!this.currentNames.files.has(p)) throw fsError('ENOENT', 'unlink', p);
      this.nameOp({ kind: 'unlink', path: p });
    });
  }

  syncDir(path: string): Promise<void> {
    return attempt(() => {
      this.gate(true);
      const p = norm(path);
      if (!this.currentNames.dirs.has(p)) throw fsError('ENOENT', 'fsync', p);
      const mine = (x: Pending): boolean => x.type === 'name' && x.dirs.includes(p);
      if (this.failSync.delete(p)) {
        this.pending = this.pending.filter((x) => !mine(x));
        throw fsError('EIO', 'fsync', p);
      }
      for (const x of this.pending) if (mine(x)) this.applyDurable(x);
      this.pending = this.pending.filter((x) => !mine(x));
    });
  }

  mkdir(path: string): Promise<void> {
    return attempt(() => {
      const p = norm(path);
      const missing: string[] = [];
      for (let d = p; !this.currentNames.dirs.has(d); d = dirname(d)) {
        if (this.currentNames.files.has(d)) throw fsError(d === p ? 'EEXIST' : 'ENOTDIR', 'mkdir', d);
        missing.unshift(d);
      }
      this.gate(missing.length > 0);
      for (const d of missing) {
        if (this.durableMkdir) {
          this.currentNames.apply({ kind: 'mkdir', path: d });
          this.durableNames.apply({ kind: 'mkdir', path: d });
        } else this.nameOp({ kind: 'mkdir', path: d });
      }
    });
  }

  list(path: string): Promise<string[]> {
    return attempt(() => {
      this.gate(false);
      const p = norm(path);
      if (!this.currentNames.dirs.has(p)) return [];
      const names = new Set<string>();
      for (const f of this.currentNames.files.keys()) if (dirname(f) === p) names.add(posix.basename(f));
      for (const d of this.currentNames.dirs) if (d !== '/' && dirname(d) === p) names.add(posix.basename(d));
      return [...names].sort();
    });
  }

  exists(path: string): Promise<boolean> {
    return attempt(() => {
      this.gate(false);
      const p = norm(path);
      return this.currentNames.files.has(p) || this.currentNames.dirs.has(p);
    });
  }

  removeTree(path: string): Promise<void> {
    return attempt(() => {
      const p = norm(path);
      if (p === '/') throw new SecondsiteError('SECONDSITE_ERR_UNSAFE_PATH', 'refusing to remove /');
      const present = this.currentNames.files.has(p) || this.currentNames.dirs.has(p);
      this.gate(present);
      if (present) this.nameOp({ kind: 'rmtree', path: p });
    });
  }

  // ---- internals used by PowerCutFile ----------------------------------------------------------------

  /** @internal */
  checkHandle(file: PowerCutFile): void {
    if (file.generation !== this.generation) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_IO',
        `${file.path}: this handle was opened before a power cut; reopen the file after the reboot`,
      );
    }
  }

  /** @internal */
  pagesOf(inode: number): Pages {
    return this.currentData.get(inode) as Pages;
  }

  /** @internal */
  dataOp(file: PowerCutFile, op: DataOp): void {
    if (op.kind === 'write') {
      const code = this.failWrite.get(file.path);
      if (code !== undefined && this.currentNames.files.get(file.path) === file.inode) {
        this.failWrite.delete(file.path);
        throw fsError(code, 'write', file.path);
      }
    }
    this.pagesOf(file.inode).apply(op);
    this.pending.push({ seq: this.seq++, type: 'data', inode: file.inode, op });
  }

  /** @internal */
  datasync(file: PowerCutFile): void {
    const mine = (x: Pending): boolean => x.type === 'data' && x.inode === file.inode;
    if (this.failSync.delete(file.path)) {
      this.pending = this.pending.filter((x) => !mine(x));
      throw fsError('EIO', 'fdatasync', file.path);
    }
    for (const x of this.pending) if (mine(x)) this.applyDurable(x);
    this.pending = this.pending.filter((x) => !mine(x));
  }

  /** @internal Fails when the power is off; counts down an armed cut on mutating calls. */
  gate(mutating: boolean): void {
    if (this.off) throw powerLoss();
    if (!mutating || !this.armed) return;
    if (this.armed.remaining > 0) {
      this.armed.remaining--;
      return;
    }
    const cut = this.armed.cut;
    this.armed = null;
    this.powerCut(cut);
    this.off = true;
    throw powerLoss();
  }

  private nameOp(op: NameOp): void {
    this.currentNames.apply(op);
    const dirs = op.kind === 'rename' ? [...new Set([dirname(op.from), dirname(op.to)])] : [dirname(op.path)];
    this.pending.push({ seq: this.seq++, type: 'name', dirs, op });
  }

  private applyDurable(p: Pending): void {
    if (p.type === 'name') this.durableNames.apply(p.op);
    else (this.durableData.get(p.inode) as Pages).apply(p.op);
  }

  private applyTorn(inode: number, op: { positionBytes: number; data: Buffer }): void {
    const pages = this.durableData.get(inode) as Pages;
    const end = op.positionBytes + op.data.length;
    for (let at = op.positionBytes; at < end;) {
      const next = Math.min(end, (Math.floor(at / SECTOR_BYTES) + 1) * SECTOR_BYTES);
      if (this.rng.chance(0.5)) {
        pages.write(op.data.subarray(at - op.positionBytes, next - op.positionBytes), at);
      }
      at = next;
    }
  }
}

function powerLoss(): SecondsiteError {
  return new SecondsiteError(
    'SECONDSITE_ERR_IO',
    'the power is off (PowerCutStorage armed cut); reboot() first',
    {
      powerLoss: true,
    },
  );
}

/** True for the error PowerCutStorage throws while its power is off. */
export function isPowerLoss(e: unknown): boolean {
  return e instanceof SecondsiteError && e.details.powerLoss === true;
}

function norm(path: string): string {
  return posix.resolve('/', path);
}

class PowerCutFile implements StorageFile {
  private closed = false;

  constructor(
    private readonly storage: PowerCutStorage,
    readonly path: string,
    readonly inode: number,
    private readonly readOnly: boolean,
    readonly generation: number,
  ) {}

  private live(use: 'read' | 'write' | 'sync'): Pages {
    this.storage.gate(use !== 'read');
    this.storage.checkHandle(this);
    if (this.closed) throw fsError('EBADF', 'use', this.path);
    if (use === 'write' && this.readOnly) throw fsError('EBADF', 'write', this.path);
    return this.storage.pagesOf(this.inode);
  }

  read(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): Promise<number> {
    return attempt(() => this.live('read').read(buf, bufOffset, lengthBytes, positionBytes));
  }

  write(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): Promise<void> {
    return attempt(() => {
      this.live('write');
      this.storage.dataOp(this, {
        kind: 'write',
        positionBytes,
        data: Buffer.from(buf.subarray(bufOffset, bufOffset + lengthBytes)),
      });
    });
  }

  /** A synchronous write (the NBD device's queue-depth-1 path): one crash point, thrown errors. */
  writeNow(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): void {
    this.live('write');
    this.storage.dataOp(this, {
      kind: 'write',
      positionBytes,
      data: Buffer.from(buf.subarray(bufOffset, bufOffset + lengthBytes)),
    });
  }

  /**
   * A scattered batch (pwriteBatch): one mutating call (one crash point), each write its own unsynced
   * write; a `failNextWrite` fails only the write it hits, the others land, as the native batch does.
   */
  writeScattered(writes: readonly PositionedBuffer[]): Promise<Array<Error | undefined>> {
    return attempt(() => {
      this.live('write');
      return writes.map((w) => {
        try {
          this.storage.dataOp(this, {
            kind: 'write',
            positionBytes: w.positionBytes,
            data: Buffer.from(w.data),
          });
          return undefined;
        } catch (e) {
          return e instanceof Error ? e : new Error(String(e));
        }
      });
    });
  }

  /** One mutating call (one crash point), its buffers as separate unsynced writes, as a pwritev. */
  writev(buffers: readonly Buffer[], positionBytes: number): Promise<void> {
    return attempt(() => {
      this.live('write');
      let at = positionBytes;
      for (const b of buffers) {
        this.storage.dataOp(this, { kind: 'write', positionBytes: at, data: Buffer.from(b) });
        at += b.length;
      }
    });
  }

  datasync(): Promise<void> {
    return attempt(() => {
      this.live('sync');
      this.storage.datasync(this);
    });
  }

  sizeBytes(): Promise<number> {
    return attempt(() => this.live('read').sizeBytes);
  }

  truncate(sizeBytes: number): Promise<void> {
    return attempt(() => {
      this.live('write');
      this.storage.dataOp(this, { kind: 'truncate', sizeBytes });
    });
  }

  punchHole(positionBytes: number, lengthBytes: number): Promise<void> {
    return attempt(() => {
      this.live('write');
      if (lengthBytes > 0) this.storage.dataOp(this, { kind: 'punch', positionBytes, lengthBytes });
    });
  }

  allocation(positionBytes: number, lengthBytes: number): Promise<AllocationExtent[]> {
    return attempt(() => {
      const pages = this.live('read');
      const out: AllocationExtent[] = [];
      const end = positionBytes + lengthBytes;
      for (let at = positionBytes; at < end;) {
        const page = Math.floor(at / PAGE_BYTES);
        const next = Math.min(end, (page + 1) * PAGE_BYTES);
        const data = pages.pages.has(page);
        const last = out[out.length - 1];
        if (last && last.data === data) last.lengthBytes += next - at;
        else out.push({ offsetBytes: at, lengthBytes: next - at, data });
        at = next;
      }
      return out;
    });
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** Runs a synchronous operation as a promise, rejecting with what it throws. */
function attempt<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
}

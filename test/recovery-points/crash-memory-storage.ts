/**
 * A minimal in-memory Storage with a volatile cache, for the recovery-point crash tests until the
 * testing kit's power-cut storage (src/testing/faults/power-cut-storage.ts) lands.
 *
 * Model (the contract of storage.ts, like a journaling file system):
 *   - file data written since the file's last `datasync()` is volatile;
 *   - name changes (create, rename, unlink) in a directory since its last `syncDir()` are volatile;
 *     they survive a cut as a prefix of that directory's operations, in order (rename is atomic);
 *   - directories themselves are durable when `mkdir` returns (a simplification).
 * `armCrash(n)` makes the (n+1)-th mutating call from now fail with `PowerCutError` without effect,
 * and every later call fail too (the machine is off). `afterPowerCut(mode)` returns a fresh storage
 * holding what survived: the durable state plus, per file, none / a random subset (torn at 512-byte
 * sectors) / a random prefix of the unsynced writes, and per directory a random prefix of the
 * unsynced name changes. allocation() reports everything as data (allowed by the interface).
 */
import { dirname, basename } from 'node:path';
import type { Rng } from '../../src/domain/random.js';
import type { AllocationExtent, OpenMode, Storage, StorageFile } from '../../src/host/storage/storage.js';

export class PowerCutError extends Error {
  constructor() {
    super('simulated power cut');
    this.name = 'PowerCutError';
  }
}

export type CutMode = 'none' | 'subset' | 'prefix';

type DataOp =
  | { kind: 'write'; pos: number; data: Buffer }
  | { kind: 'truncate'; size: number }
  | { kind: 'punch'; pos: number; len: number };

type NameOp =
  | { kind: 'link'; name: string; inode: Inode }
  | { kind: 'unlink'; name: string }
  | { kind: 'rename'; from: string; to: string; inode: Inode };

class Inode {
  constructor(
    public durable: Buffer,
    public current: Buffer,
    public pending: DataOp[] = [],
  ) {}
}

interface Dir {
  durable: Map<string, Inode>;
  current: Map<string, Inode>;
  pending: NameOp[];
}

function applyOp(buf: Buffer, op: DataOp): Buffer {
  switch (op.kind) {
    case 'write': {
      const end = op.pos + op.data.length;
      const out = end > buf.length ? Buffer.concat([buf, Buffer.alloc(end - buf.length)]) : buf;
      op.data.copy(out, op.pos);
      return out;
    }
    case 'truncate':
      return op.size <= buf.length
        ? Buffer.from(buf.subarray(0, op.size))
        : Buffer.concat([buf, Buffer.alloc(op.size - buf.length)]);
    case 'punch': {
      const end = Math.min(op.pos + op.len, buf.length);
      if (end > op.pos) buf.fill(0, op.pos, end);
      return buf;
    }
  }
}

export class CrashMemoryStorage implements Storage {
  private readonly dirs = new Map<string, Dir>();
  private crashIn: number | null = null;
  private dead = false;
  /** Mutating calls made so far (for sizing crash points). */
  mutations = 0;

  constructor() {
    this.dirs.set('/', { durable: new Map(), current: new Map(), pending: [] });
  }

  armCrash(afterMutations: number): void {
    this.crashIn = afterMutations;
  }

  get isDead(): boolean {
    return this.dead;
  }

  /** A new storage holding what survived a power cut now. */
  afterPowerCut(mode: CutMode, rng: Rng): CrashMemoryStorage {
    this.dead = true;
    const next = new CrashMemoryStorage();
    const survivors = new Map<Inode, Inode>();
    const survive = (inode: Inode): Inode => {
      let copy = survivors.get(inode);
      if (copy !== undefined) return copy;
      let data: Buffer = Buffer.from(inode.durable);
      const ops = inode.pending;
      const keepCount = mode === 'prefix' ? rng.int(ops.length + 1) : ops.length;
      for (let i = 0; i < keepCount; i++) {
        const op = ops[i] as DataOp;
        if (mode === 'none') break;
        if (mode === 'subset') {
          if (op.kind === 'write') {
            for (let s = 0; s < op.data.length; s += 512) {
              if (rng.chance(0.5)) {
                data = applyOp(data, {
                  kind: 'write',
                  pos: op.pos + s,
                  data: op.data.subarray(s, Math.min(s + 512, op.data.length)),
                });
              }
            }
            continue;
          }
          if (!rng.chance(0.5)) continue;
        }
        data = applyOp(data, op);
      }
      copy = new Inode(data, Buffer.from(data));
      survivors.set(inode, copy);
      return copy;
    };
    for (const [path, dir] of this.dirs) {
      const names = new Map(dir.durable);
      const keep = mode === 'none' ? 0 : rng.int(dir.pending.length + 1);
      for (const op of dir.pending.slice(0, keep)) {
        if (op.kind === 'link') names.set(op.name, op.inode);
        else if (op.kind === 'unlink') names.delete(op.name);
        else {
          names.delete(op.from);
          names.set(op.to, op.inode);
        }
      }
      const m = new Map<string, Inode>();
      for (const [name, inode] of names) m.set(name, survive(inode));
      next.dirs.set(path, { durable: m, current: new Map(m), pending: [] });
    }
    return next;
  }

  /** Every file path and its current size (for "nothing left behind" checks). */
  listAll(prefix: string): string[] {
    const out: string[] = [];
    for (const [path, dir] of this.dirs) {
      if (!path.startsWith(prefix)) continue;
      for (const name of dir.current.keys()) out.push(`${path}/${name}`);
    }
    return out.sort();
  }

  mutate(): void {
    if (this.dead) throw new PowerCutError();
    if (this.crashIn !== null) {
      if (this.crashIn === 0) {
        this.dead = true;
        throw new PowerCutError();
      }
      this.crashIn--;
    }
    this.mutations++;
  }

  checkAlive(): void {
    if (this.dead) throw new PowerCutError();
  }

  private dirOf(path: string): Dir {
    const d = this.dirs.get(norm(dirname(path)));
    if (d === undefined) throw enoent(path);
    return d;
  }

  open(path: string, mode: OpenMode): Promise<StorageFile> {
    this.checkAlive();
    const dir = this.dirOf(path);
    const name = basename(path);
    let inode = dir.current.get(name);
    if (inode === undefined) {
      if (mode !== 'create') return Promise.reject(enoent(path));
      this.mutate();
      inode = new Inode(Buffer.alloc(0), Buffer.alloc(0));
      dir.current.set(name, inode);
      dir.pending.push({ kind: 'link', name, inode });
    }
    return Promise.resolve(new MemoryFile(this, path, inode, mode === 'read'));
  }

  rename(from: string, to: string): Promise<void> {
    this.mutate();
    const a = this.dirOf(from);
    const b = this.dirOf(to);
    const inode = a.current.get(basename(from));
    if (inode === undefined) return Promise.reject(enoent(from));
    if (a !== b) throw new Error('cross-directory rename is not modelled');
    a.current.delete(basename(from));
    a.current.set(basename(to), inode);
    a.pending.push({ kind: 'rename', from: basename(from), to: basename(to), inode });
    return Promise.resolve();
  }

  unlink(path: string): Promise<void> {
    this.mutate();
    const d = this.dirOf(path);
    if (!d.current.delete(basename(path))) return Promise.reject(enoent(path));
    d.pending.push({ kind: 'unlink', name: basename(path) });
    return Promise.resolve();
  }

  syncDir(path: string): Promise<void> {
    this.mutate();
    const d = this.dirs.get(norm(path));
    if (d === undefined) return Promise.reject(enoent(path));
    d.durable = new Map(d.current);
    d.pending = [];
    return Promise.resolve();
  }

  mkdir(path: string): Promise<void> {
    this.checkAlive();
    let p = norm(path);
    const chain: string[] = [];
    while (p !== '/' && !this.dirs.has(p)) {
      chain.push(p);
      p = norm(dirname(p));
    }
    for (const d of chain.reverse())
      this.dirs.set(d, { durable: new Map(), current: new Map(), pending: [] });
    return Promise.resolve();
  }

  list(path: string): Promise<string[]> {
    this.checkAlive();
    const p = norm(path);
    const d = this.dirs.get(p);
    const names = new Set(d === undefined ? [] : d.current.keys());
    for (const other of this.dirs.keys())
      if (other !== p && norm(dirname(other)) === p) names.add(basename(other));
    return Promise.resolve([...names].sort());
  }

  exists(path: string): Promise<boolean> {
    this.checkAlive();
    const p = norm(path);
    if (this.dirs.has(p)) return Promise.resolve(true);
    return Promise.resolve(this.dirs.get(norm(dirname(p)))?.current.has(basename(p)) ?? false);
  }

  removeTree(path: string): Promise<void> {
    this.mutate();
    const p = norm(path);
    // Directories are modelled as durable at once: removal of a tree is too.
    for (const d of [...this.dirs.keys()]) if (d === p || d.startsWith(`${p}/`)) this.dirs.delete(d);
    return Promise.resolve();
  }
}

class MemoryFile implements StorageFile {
  constructor(
    private readonly storage: CrashMemoryStorage,
    readonly path: string,
    private readonly inode: Inode,
    private readonly readOnly: boolean,
  ) {}

  read(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): Promise<number> {
    this.storage.checkAlive();
    const cur = this.inode.current;
    const n = Math.max(0, Math.min(lengthBytes, cur.length - positionBytes));
    if (n > 0) cur.copy(buf, bufOffset, positionBytes, positionBytes + n);
    return Promise.resolve(n);
  }

  write(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): Promise<void> {
    this.checkWritable();
    this.storage.mutate();
    const data = Buffer.from(buf.subarray(bufOffset, bufOffset + lengthBytes));
    this.apply({ kind: 'write', pos: positionBytes, data });
    return Promise.resolve();
  }

  datasync(): Promise<void> {
    this.storage.mutate();
    this.inode.durable = Buffer.from(this.inode.current);
    this.inode.pending = [];
    return Promise.resolve();
  }

  sizeBytes(): Promise<number> {
    this.storage.checkAlive();
    return Promise.resolve(this.inode.current.length);
  }

  truncate(sizeBytes: number): Promise<void> {
    this.checkWritable();
    this.storage.mutate();
    this.apply({ kind: 'truncate', size: sizeBytes });
    return Promise.resolve();
  }

  punchHole(positionBytes: number, lengthBytes: number): Promise<void> {
    this.checkWritable();
    this.storage.mutate();
    this.apply({ kind: 'punch', pos: positionBytes, len: lengthBytes });
    return Promise.resolve();
  }

  allocation(positionBytes: number, lengthBytes: number): Promise<AllocationExtent[]> {
    this.storage.checkAlive();
    return Promise.resolve(lengthBytes > 0 ? [{ offsetBytes: positionBytes, lengthBytes, data: true }] : []);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private apply(op: DataOp): void {
    this.inode.current = applyOp(this.inode.current, op);
    this.inode.pending.push(op);
  }

  private checkWritable(): void {
    if (this.readOnly) throw new Error(`${this.path} is open read-only`);
  }
}

function norm(path: string): string {
  const p = path.replace(/\/+$/, '');
  return p === '' ? '/' : p;
}

function enoent(path: string): Error {
  return Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
}

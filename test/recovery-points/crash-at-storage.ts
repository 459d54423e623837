/**
 * A thin fault wrapper (zrepl's PartialSender idea) around any Storage: it counts mutating calls and,
 * once armed with `armCrash(n)`, lets n more through and then fails every call with `PowerCutError`
 * without performing it, as if the machine had stopped at that instant. The test then cuts power on
 * the wrapped storage (the testing kit's PowerCutStorage) and reboots the code under test over it.
 */
import type { OpenMode, Storage, StorageFile } from '../../src/host/storage/storage.js';

export class PowerCutError extends Error {
  constructor() {
    super('simulated power cut');
    this.name = 'PowerCutError';
  }
}

export class CrashAtStorage implements Storage {
  /** Mutating calls let through so far. */
  mutations = 0;
  private remaining: number | null = null;
  private stopped = false;

  constructor(readonly inner: Storage) {}

  armCrash(afterMutations: number): void {
    this.remaining = afterMutations;
  }

  /** @internal Counts one mutating call, or throws when the machine has stopped. */
  step(): void {
    if (this.stopped) throw new PowerCutError();
    if (this.remaining !== null) {
      if (this.remaining === 0) {
        this.stopped = true;
        throw new PowerCutError();
      }
      this.remaining--;
    }
    this.mutations++;
  }

  /** @internal */
  alive(): void {
    if (this.stopped) throw new PowerCutError();
  }

  async open(path: string, mode: OpenMode): Promise<StorageFile> {
    if (mode === 'create') this.step();
    else this.alive();
    return new CrashAtFile(this, await this.inner.open(path, mode));
  }
  rename(from: string, to: string): Promise<void> {
    return this.run(() => this.inner.rename(from, to));
  }
  unlink(path: string): Promise<void> {
    return this.run(() => this.inner.unlink(path));
  }
  syncDir(path: string): Promise<void> {
    return this.run(() => this.inner.syncDir(path));
  }
  mkdir(path: string): Promise<void> {
    return this.run(() => this.inner.mkdir(path));
  }
  list(path: string): Promise<string[]> {
    this.alive();
    return this.inner.list(path);
  }
  exists(path: string): Promise<boolean> {
    this.alive();
    return this.inner.exists(path);
  }
  removeTree(path: string): Promise<void> {
    return this.run(() => this.inner.removeTree(path));
  }

  private async run(fn: () => Promise<void>): Promise<void> {
    this.step();
    await fn();
  }
}

class CrashAtFile implements StorageFile {
  constructor(
    private readonly owner: CrashAtStorage,
    private readonly file: StorageFile,
  ) {}
  get path(): string {
    return this.file.path;
  }
  read(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): Promise<number> {
    this.owner.alive();
    return this.file.read(buf, bufOffset, lengthBytes, positionBytes);
  }
  async write(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): Promise<void> {
    this.owner.step();
    await this.file.write(buf, bufOffset, lengthBytes, positionBytes);
  }
  async datasync(): Promise<void> {
    this.owner.step();
    await this.file.datasync();
  }
  sizeBytes(): Promise<number> {
    this.owner.alive();
    return this.file.sizeBytes();
  }
  async truncate(sizeBytes: number): Promise<void> {
    this.owner.step();
    await this.file.truncate(sizeBytes);
  }
  async punchHole(positionBytes: number, lengthBytes: number): Promise<void> {
    this.owner.step();
    await this.file.punchHole(positionBytes, lengthBytes);
  }
  allocation(positionBytes: number, lengthBytes: number): ReturnType<StorageFile['allocation']> {
    this.owner.alive();
    return this.file.allocation(positionBytes, lengthBytes);
  }
  close(): Promise<void> {
    return this.file.close();
  }
}

/**
 * A thin fault wrapper (zrepl's PartialSender idea) around any Storage that stops the machine at a
 * chosen mutating call: that call and every later one fail with `MachineStopped` without effect, as if
 * power were cut at that instant. The test then cuts power on the wrapped storage (PowerCutStorage)
 * and reboots the code under test over it. Mutating calls: open(create), write, datasync, truncate,
 * punchHole, rename, unlink, syncDir, mkdir, removeTree; reads only check the machine is up.
 *
 *   new StopAtStorage(inner, n)   stops at the n-th mutating call from now (Infinity: never)
 *   storage.armStop(k)            from any moment, lets k more mutating calls through, then stops
 *   storage.mutations             mutating calls let through so far (run once unarmed to count them)
 */
import type { AllocationExtent, OpenMode, Storage, StorageFile } from '../../host/storage/storage.js';

export class MachineStopped extends Error {
  constructor() {
    super('machine stopped (simulated power cut)');
    this.name = 'MachineStopped';
  }
}

export class StopAtStorage implements Storage {
  /** Mutating calls let through so far. */
  mutations = 0;
  private stopAt: number;
  private stopped = false;

  constructor(
    readonly inner: Storage,
    stopAt = Infinity,
  ) {
    this.stopAt = stopAt;
  }

  /** Lets `afterMutations` more mutating calls through, then stops the machine. */
  armStop(afterMutations: number): void {
    this.stopAt = this.mutations + afterMutations;
  }

  /** Counts one mutating call, or throws when the machine has stopped. */
  step(): void {
    if (this.stopped || this.mutations >= this.stopAt) {
      this.stopped = true;
      throw new MachineStopped();
    }
    this.mutations++;
  }

  /** Throws when the machine has stopped. */
  alive(): void {
    if (this.stopped) throw new MachineStopped();
  }

  async open(path: string, mode: OpenMode): Promise<StorageFile> {
    if (mode === 'create') this.step();
    else this.alive();
    return new StopAtFile(this, await this.inner.open(path, mode));
  }
  async rename(from: string, to: string): Promise<void> {
    this.step();
    await this.inner.rename(from, to);
  }
  async unlink(path: string): Promise<void> {
    this.step();
    await this.inner.unlink(path);
  }
  async syncDir(path: string): Promise<void> {
    this.step();
    await this.inner.syncDir(path);
  }
  async mkdir(path: string): Promise<void> {
    this.step();
    await this.inner.mkdir(path);
  }
  async removeTree(path: string): Promise<void> {
    this.step();
    await this.inner.removeTree(path);
  }
  list(path: string): Promise<string[]> {
    this.alive();
    return this.inner.list(path);
  }
  exists(path: string): Promise<boolean> {
    this.alive();
    return this.inner.exists(path);
  }
}

class StopAtFile implements StorageFile {
  constructor(
    private readonly owner: StopAtStorage,
    private readonly inner: StorageFile,
  ) {}
  get path(): string {
    return this.inner.path;
  }
  read(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): Promise<number> {
    this.owner.alive();
    return this.inner.read(buf, bufOffset, lengthBytes, positionBytes);
  }
  async write(buf: Buffer, bufOffset: number, lengthBytes: number, positionBytes: number): Promise<void> {
    this.owner.step();
    await this.inner.write(buf, bufOffset, lengthBytes, positionBytes);
  }
  async datasync(): Promise<void> {
    this.owner.step();
    await this.inner.datasync();
  }
  sizeBytes(): Promise<number> {
    this.owner.alive();
    return this.inner.sizeBytes();
  }
  async truncate(sizeBytes: number): Promise<void> {
    this.owner.step();
    await this.inner.truncate(sizeBytes);
  }
  async punchHole(positionBytes: number, lengthBytes: number): Promise<void> {
    this.owner.step();
    await this.inner.punchHole(positionBytes, lengthBytes);
  }
  allocation(positionBytes: number, lengthBytes: number): Promise<AllocationExtent[]> {
    this.owner.alive();
    return this.inner.allocation(positionBytes, lengthBytes);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

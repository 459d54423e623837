/**
 * Two small async locks for the store: a mutex that serializes mutations (commit, retention, epoch,
 * disks), and a reader/writer lock that keeps view reads out of the windows where the base and the
 * undo chain change together (apply + publish, retention's chain swap).
 */
export class AsyncMutex {
  private tail: Promise<void> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

export class ReadWriteLock {
  private readers = 0;
  private writer = false;
  private waiting: Array<{ write: boolean; wake: () => void }> = [];

  async read<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(false);
    try {
      return await fn();
    } finally {
      this.release(false);
    }
  }

  async write<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(true);
    try {
      return await fn();
    } finally {
      this.release(true);
    }
  }

  private acquire(write: boolean): Promise<void> {
    if (this.waiting.length === 0 && (write ? !this.writer && this.readers === 0 : !this.writer)) {
      if (write) this.writer = true;
      else this.readers++;
      return Promise.resolve();
    }
    return new Promise((wake) => this.waiting.push({ write, wake }));
  }

  private release(write: boolean): void {
    if (write) this.writer = false;
    else this.readers--;
    while (this.waiting.length > 0) {
      const next = this.waiting[0] as { write: boolean; wake: () => void };
      if (next.write ? this.writer || this.readers > 0 : this.writer) break;
      this.waiting.shift();
      if (next.write) this.writer = true;
      else this.readers++;
      next.wake();
    }
  }
}

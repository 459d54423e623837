/**
 * An in-memory disk for tests: a `WorkloadTarget` over one Buffer whose calls complete after a random
 * number of event-loop turns (so acknowledgements come back out of order, as over NBD). `image` is the
 * current content. Trim keeps or zeroes each block at random, as a real device may.
 */
import { Rng } from '../../domain/random.js';
import type { WorkloadTarget } from './workload-target.js';
import { BLOCK_SIZE_BYTES } from './block-format.js';

export class MemoryTarget implements WorkloadTarget {
  readonly image: Buffer;
  private readonly rng: Rng;
  writes = 0;
  flushes = 0;

  constructor(
    readonly sizeBytes: number,
    options: { seed?: number; maxDelayTurns?: number } = {},
  ) {
    this.image = Buffer.alloc(sizeBytes);
    this.rng = new Rng(options.seed ?? 1);
    this.maxDelayTurns = options.maxDelayTurns ?? 3;
  }

  private readonly maxDelayTurns: number;

  async write(offsetBytes: number, data: Buffer): Promise<void> {
    await this.delay();
    data.copy(this.image, offsetBytes);
    this.writes++;
  }

  async flush(): Promise<void> {
    await this.delay();
    this.flushes++;
  }

  async writeZeroes(offsetBytes: number, lengthBytes: number): Promise<void> {
    await this.delay();
    this.image.fill(0, offsetBytes, offsetBytes + lengthBytes);
  }

  async trim(offsetBytes: number, lengthBytes: number): Promise<void> {
    await this.delay();
    for (let o = offsetBytes; o < offsetBytes + lengthBytes; o += BLOCK_SIZE_BYTES) {
      if (this.rng.chance(0.5))
        this.image.fill(0, o, Math.min(o + BLOCK_SIZE_BYTES, offsetBytes + lengthBytes));
    }
  }

  private async delay(): Promise<void> {
    const turns = this.rng.int(this.maxDelayTurns + 1);
    for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

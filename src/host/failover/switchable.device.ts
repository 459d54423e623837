/**
 * A BlockDevice whose backing device can be replaced under a live NBD export (failover commit turns
 * a recovery VM's copy-on-write view into an ordinary disk while the VM runs). `switchTo` holds new
 * calls (they wait, they do not fail), waits for the calls in flight, runs the switch, and releases
 * the held calls onto the new device. A failed switch keeps the old device.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { BlockDevice, BlockExtent, WriteFlags, ZeroFlags } from '../block-device/block-device.js';

export class SwitchableDevice implements BlockDevice {
  private inFlight = 0;
  private drained: Array<() => void> = [];
  private hold: Promise<void> | null = null;

  constructor(private current: BlockDevice) {}

  get sizeBytes(): number {
    return this.current.sizeBytes;
  }
  get readOnly(): boolean {
    return this.current.readOnly;
  }
  /** The device calls go to now. */
  get device(): BlockDevice {
    return this.current;
  }

  read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    return this.run((d) => d.read(offsetBytes, lengthBytes));
  }
  write(offsetBytes: number, data: Buffer, flags: WriteFlags): Promise<void> {
    return this.run((d) => d.write(offsetBytes, data, flags));
  }
  flush(): Promise<void> {
    return this.run((d) => d.flush());
  }
  trim(offsetBytes: number, lengthBytes: number, flags: WriteFlags): Promise<void> {
    return this.run((d) => d.trim(offsetBytes, lengthBytes, flags));
  }
  writeZeroes(offsetBytes: number, lengthBytes: number, flags: ZeroFlags): Promise<void> {
    return this.run((d) => d.writeZeroes(offsetBytes, lengthBytes, flags));
  }
  extents(offsetBytes: number, lengthBytes: number): Promise<BlockExtent[]> {
    return this.run((d) => d.extents(offsetBytes, lengthBytes));
  }
  close(): Promise<void> {
    return this.current.close();
  }

  /**
   * Holds new calls, waits for those in flight, and replaces the device with what `fn` returns (fn gets
   * the old one, flushed). The new device must have the same size. Held calls then go to it.
   */
  async switchTo(fn: (old: BlockDevice) => Promise<BlockDevice>): Promise<void> {
    while (this.hold) await this.hold;
    let release = (): void => {};
    this.hold = new Promise<void>((r) => (release = r));
    try {
      if (this.inFlight > 0) await new Promise<void>((r) => this.drained.push(r));
      await this.current.flush();
      const next = await fn(this.current);
      if (next.sizeBytes !== this.current.sizeBytes) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_ARGUMENT',
          `cannot switch a ${this.current.sizeBytes}-byte disk to a ${next.sizeBytes}-byte device`,
        );
      }
      this.current = next;
    } finally {
      this.hold = null;
      release();
    }
  }

  private async run<T>(op: (d: BlockDevice) => Promise<T>): Promise<T> {
    while (this.hold) await this.hold;
    this.inFlight++;
    try {
      return await op(this.current);
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) for (const wake of this.drained.splice(0)) wake();
    }
  }
}

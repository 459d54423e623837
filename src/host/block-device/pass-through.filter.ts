/**
 * The base of a BlockDevice filter (nbdkit's filter idea): every call goes to the inner device unless
 * a subclass overrides it. A filter overrides only what it changes (e.g. `close` to release a claim,
 * `write` to take another path), so the delegation is written once.
 */
import type { BlockDevice, BlockExtent, WriteFlags, ZeroFlags } from './block-device.js';

export class PassThroughFilter implements BlockDevice {
  constructor(protected readonly inner: BlockDevice) {}

  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    return this.inner.read(offsetBytes, lengthBytes);
  }
  write(offsetBytes: number, data: Buffer, flags: WriteFlags): Promise<void> {
    return this.inner.write(offsetBytes, data, flags);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  trim(offsetBytes: number, lengthBytes: number, flags: WriteFlags): Promise<void> {
    return this.inner.trim(offsetBytes, lengthBytes, flags);
  }
  writeZeroes(offsetBytes: number, lengthBytes: number, flags: ZeroFlags): Promise<void> {
    return this.inner.writeZeroes(offsetBytes, lengthBytes, flags);
  }
  extents(offsetBytes: number, lengthBytes: number): Promise<BlockExtent[]> {
    return this.inner.extents(offsetBytes, lengthBytes);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

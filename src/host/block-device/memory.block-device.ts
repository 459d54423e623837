/**
 * A sparse in-memory BlockDevice (like `nbdkit memory`): the disk is a map of 64 KiB pages, a missing
 * page reads as zeros and is reported as a hole. Trim and write-zeroes drop whole pages (or keep them
 * allocated with `noHole`) and zero the partial pages at the ends. Flush and FUA are no-ops: nothing
 * here survives the process, which is what tests and the lab need. Offsets are trusted (the NBD server
 * validates every request); misuse throws SECONDSITE_ERR_INVALID_ARGUMENT.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { BlockDevice, BlockExtent, WriteFlags, ZeroFlags } from './block-device.js';

const PAGE_BYTES = 64 * 1024;

export interface MemoryBlockDeviceOptions {
  sizeBytes: number;
  readOnly?: boolean;
}

export class MemoryBlockDevice implements BlockDevice {
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  private readonly pages = new Map<number, Buffer>();
  private closed = false;

  constructor(options: MemoryBlockDeviceOptions) {
    if (!Number.isSafeInteger(options.sizeBytes) || options.sizeBytes < 0)
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `memory disk size ${options.sizeBytes} is not a non-negative integer number of bytes; pass a byte count`,
        { sizeBytes: options.sizeBytes },
      );
    this.sizeBytes = options.sizeBytes;
    this.readOnly = options.readOnly ?? false;
  }

  /** Bytes held in allocated pages (for tests and stats). */
  get allocatedBytes(): number {
    return this.pages.size * PAGE_BYTES;
  }

  read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    this.check(offsetBytes, lengthBytes, false);
    const out = Buffer.alloc(lengthBytes);
    this.forEachPage(offsetBytes, lengthBytes, (index, pageOffset, n, outOffset) => {
      const page = this.pages.get(index);
      if (page) page.copy(out, outOffset, pageOffset, pageOffset + n);
    });
    return Promise.resolve(out);
  }

  write(offsetBytes: number, data: Buffer, _flags: WriteFlags): Promise<void> {
    this.check(offsetBytes, data.length, true);
    this.forEachPage(offsetBytes, data.length, (index, pageOffset, n, dataOffset) => {
      let page = this.pages.get(index);
      if (!page) {
        page = Buffer.alloc(PAGE_BYTES);
        this.pages.set(index, page);
      }
      data.copy(page, pageOffset, dataOffset, dataOffset + n);
    });
    return Promise.resolve();
  }

  flush(): Promise<void> {
    this.check(0, 0, false);
    return Promise.resolve();
  }

  trim(offsetBytes: number, lengthBytes: number, _flags: WriteFlags): Promise<void> {
    this.check(offsetBytes, lengthBytes, true);
    this.zeroRange(offsetBytes, lengthBytes, false);
    return Promise.resolve();
  }

  writeZeroes(offsetBytes: number, lengthBytes: number, flags: ZeroFlags): Promise<void> {
    this.check(offsetBytes, lengthBytes, true);
    this.zeroRange(offsetBytes, lengthBytes, flags.noHole);
    return Promise.resolve();
  }

  extents(offsetBytes: number, lengthBytes: number): Promise<BlockExtent[]> {
    this.check(offsetBytes, lengthBytes, false);
    const out: BlockExtent[] = [];
    this.forEachPage(offsetBytes, lengthBytes, (index, _pageOffset, n, rel) => {
      const hole = !this.pages.has(index);
      const last = out[out.length - 1];
      if (last && last.hole === hole) last.lengthBytes += n;
      else out.push({ offsetBytes: offsetBytes + rel, lengthBytes: n, hole, zero: hole });
    });
    return Promise.resolve(out);
  }

  close(): Promise<void> {
    this.closed = true;
    this.pages.clear();
    return Promise.resolve();
  }

  private zeroRange(offsetBytes: number, lengthBytes: number, keepAllocated: boolean): void {
    this.forEachPage(offsetBytes, lengthBytes, (index, pageOffset, n) => {
      const page = this.pages.get(index);
      if (n === PAGE_BYTES) {
        if (keepAllocated) this.pages.set(index, page ? page.fill(0) : Buffer.alloc(PAGE_BYTES));
        else this.pages.delete(index);
        return;
      }
      if (page) page.fill(0, pageOffset, pageOffset + n);
      else if (keepAllocated) this.pages.set(index, Buffer.alloc(PAGE_BYTES));
    });
  }

  /** Calls fn(pageIndex, offsetInPage, bytesInPage, offsetRelativeToStart) for each page touched. */
  private forEachPage(
    offsetBytes: number,
    lengthBytes: number,
    fn: (index: number, pageOffset: number, n: number, rel: number) => void,
  ): void {
    let pos = offsetBytes;
    const end = offsetBytes + lengthBytes;
    while (pos < end) {
      const index = Math.floor(pos / PAGE_BYTES);
      const pageOffset = pos - index * PAGE_BYTES;
      const n = Math.min(PAGE_BYTES - pageOffset, end - pos);
      fn(index, pageOffset, n, pos - offsetBytes);
      pos += n;
    }
  }

  private check(offsetBytes: number, lengthBytes: number, writing: boolean): void {
    if (this.closed)
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_STATE', 'the memory disk is closed; open a new one');
    if (writing && this.readOnly)
      throw new SecondsiteError(
        'SECONDSITE_ERR_FORBIDDEN',
        'the memory disk is read-only; writes are refused',
      );
    if (
      !Number.isSafeInteger(offsetBytes) ||
      !Number.isSafeInteger(lengthBytes) ||
      offsetBytes < 0 ||
      lengthBytes < 0 ||
      offsetBytes + lengthBytes > this.sizeBytes
    )
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `range [${offsetBytes}, +${lengthBytes}) is outside the ${this.sizeBytes}-byte memory disk; validate requests before calling the device`,
        { offsetBytes, lengthBytes, sizeBytes: this.sizeBytes },
      );
  }
}

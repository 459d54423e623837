/**
 * Where the checker reads a disk image from: a read function, a BlockDevice, a file path or a Buffer.
 * Reads past the end of a short file or buffer return zeros (a sparse or truncated image).
 */
import { open } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import type { BlockDevice } from '../../host/block-device/block-device.js';

export type DiskImage =
  | { diskId: number; read(offsetBytes: number, lengthBytes: number): Promise<Buffer> }
  | { diskId: number; device: BlockDevice }
  | { diskId: number; path: string }
  | { diskId: number; buffer: Buffer };

export interface ImageReader {
  read(offsetBytes: number, lengthBytes: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** Opens an image for reading; always `close()` it. */
export async function openImage(image: DiskImage): Promise<ImageReader> {
  if ('buffer' in image) {
    const buf = image.buffer;
    return {
      read: (offsetBytes, lengthBytes) =>
        Promise.resolve(padded(buf.subarray(offsetBytes, offsetBytes + lengthBytes), lengthBytes)),
      close: () => Promise.resolve(),
    };
  }
  if ('device' in image) {
    const dev = image.device;
    return {
      read: async (offsetBytes, lengthBytes) => {
        const end = Math.min(dev.sizeBytes, offsetBytes + lengthBytes);
        if (end <= offsetBytes) return Buffer.alloc(lengthBytes);
        return padded(await dev.read(offsetBytes, end - offsetBytes), lengthBytes);
      },
      close: () => Promise.resolve(),
    };
  }
  if ('path' in image) {
    const handle = await open(image.path, 'r');
    return {
      read: async (offsetBytes, lengthBytes) => {
        const buf = Buffer.alloc(lengthBytes);
        let done = 0;
        while (done < lengthBytes) {
          const { bytesRead } = await handle.read(buf, done, lengthBytes - done, offsetBytes + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return buf;
      },
      close: () => handle.close(),
    };
  }
  const read = image.read.bind(image);
  return {
    read: async (offsetBytes, lengthBytes) => padded(await read(offsetBytes, lengthBytes), lengthBytes),
    close: () => Promise.resolve(),
  };
}

function padded(buf: Buffer, lengthBytes: number): Buffer {
  if (buf.length >= lengthBytes) return buf.length === lengthBytes ? buf : buf.subarray(0, lengthBytes);
  const out = Buffer.alloc(lengthBytes);
  buf.copy(out);
  return out;
}

/**
 * Compares two images of `sizeBytes` byte for byte (planned failover: replica == primary). Returns
 * the sha256 of each and the first differing byte offset, or null when equal.
 */
export async function compareImages(
  a: DiskImage,
  b: DiskImage,
  sizeBytes: number,
  chunkBytes = 4 * 1024 * 1024,
): Promise<{ equal: boolean; firstDifferenceBytes: number | null; sha256A: string; sha256B: string }> {
  const ra = await openImage(a);
  const rb = await openImage(b);
  const ha = createHash('sha256');
  const hb = createHash('sha256');
  let first: number | null = null;
  try {
    for (let off = 0; off < sizeBytes; off += chunkBytes) {
      const len = Math.min(chunkBytes, sizeBytes - off);
      const [x, y] = await Promise.all([ra.read(off, len), rb.read(off, len)]);
      ha.update(x);
      hb.update(y);
      if (first === null && !x.equals(y)) {
        for (let i = 0; i < len; i++) {
          if (x[i] !== y[i]) {
            first = off + i;
            break;
          }
        }
      }
    }
  } finally {
    await ra.close();
    await rb.close();
  }
  return {
    equal: first === null,
    firstDifferenceBytes: first,
    sha256A: ha.digest('hex'),
    sha256B: hb.digest('hex'),
  };
}

/**
 * A read-only view of one disk at one retained point (PointDiskReader). It holds no data of its own:
 * every read resolves, block range by block range, through the store's current undo chain and base
 * (docs/design/recovery-points.md, invariant 2), so it stays exact while later cycles commit. The
 * point is pinned (kept by retention) until the view is closed.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { PointDiskReader } from './replica-store.js';

export interface PointResolver {
  readPoint(pointId: string, diskId: string, offsetBytes: number, lengthBytes: number): Promise<Buffer>;
  allocationAtPoint(
    pointId: string,
    diskId: string,
    offsetBytes: number,
    lengthBytes: number,
  ): Promise<Array<{ offsetBytes: number; lengthBytes: number; data: boolean }>>;
  unpin(pointId: string): void;
}

export class PointDiskView implements PointDiskReader {
  private closed = false;

  constructor(
    private readonly resolver: PointResolver,
    readonly pointId: string,
    readonly diskId: string,
    readonly sizeBytes: number,
  ) {}

  async read(offsetBytes: number, lengthBytes: number): Promise<Buffer> {
    this.check(offsetBytes, lengthBytes);
    return await this.resolver.readPoint(this.pointId, this.diskId, offsetBytes, lengthBytes);
  }

  async allocation(
    offsetBytes: number,
    lengthBytes: number,
  ): Promise<Array<{ offsetBytes: number; lengthBytes: number; data: boolean }>> {
    this.check(offsetBytes, lengthBytes);
    return await this.resolver.allocationAtPoint(this.pointId, this.diskId, offsetBytes, lengthBytes);
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.resolver.unpin(this.pointId);
    }
    return Promise.resolve();
  }

  private check(offsetBytes: number, lengthBytes: number): void {
    if (this.closed) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `the view of point ${this.pointId} is closed`,
        {
          pointId: this.pointId,
        },
      );
    }
    if (
      !Number.isSafeInteger(offsetBytes) ||
      offsetBytes < 0 ||
      lengthBytes < 0 ||
      offsetBytes + lengthBytes > this.sizeBytes
    ) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `range [${offsetBytes}, +${lengthBytes}) is outside disk ${this.diskId} of ${this.sizeBytes} bytes at point ${this.pointId}`,
        { pointId: this.pointId, diskId: this.diskId, offsetBytes, lengthBytes },
      );
    }
  }
}

/**
 * A test-failover (or recovery) view of a retained point: per disk a copy-on-write overlay, in
 * `views/<viewId>/`. The view pins its point (retention keeps it) from creation until `discard()`,
 * which deletes the directory so nothing is left behind. A view survives a restart of the host agent
 * (reopen it with the same viewId); flushed writes are kept.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Storage } from '../storage/storage.js';
import { CowOverlayDevice } from './cow-overlay.js';
import { readMetadataFile, writeMetadataFile } from './metadata-file.js';
import type { PointDiskReader } from './replica-store.js';
import { checkPlainName } from './store-layout.js';

export interface TestViewHost {
  openPointDisk(pointId: string, diskId: string): Promise<PointDiskReader>;
  forgetView(viewId: string): Promise<void>;
}

interface ViewBody {
  readonly format: 'secondsite-view-1';
  readonly pointId: string;
}

export class TestView {
  private readonly devices = new Map<string, CowOverlayDevice>();
  private state: 'open' | 'closed' | 'discarded' = 'open';

  private constructor(
    private readonly storage: Storage,
    readonly dir: string,
    readonly viewId: string,
    readonly pointId: string,
    private readonly host: TestViewHost,
  ) {}

  static async open(
    storage: Storage,
    dir: string,
    viewId: string,
    pointId: string,
    host: TestViewHost,
  ): Promise<TestView> {
    const existing = await TestView.pointOf(storage, dir);
    if (existing !== null && existing !== pointId) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_ALREADY_EXISTS',
        `test view ${viewId} already exists over point ${existing}; discard it or use another view id`,
        { viewId, pointId: existing },
      );
    }
    if (existing === null) {
      await storage.mkdir(dir);
      await storage.syncDir(dir.slice(0, dir.lastIndexOf('/')));
      const body: ViewBody = { format: 'secondsite-view-1', pointId };
      await writeMetadataFile(storage, `${dir}/view.meta`, body);
    }
    return new TestView(storage, dir, viewId, pointId, host);
  }

  /** The point of the view stored in `dir`, or null when there is no (complete) view there. */
  static async pointOf(storage: Storage, dir: string): Promise<string | null> {
    const body = (await readMetadataFile(storage, `${dir}/view.meta`)) as ViewBody | null;
    return body?.format === 'secondsite-view-1' ? body.pointId : null;
  }

  /** The writable overlay disk `diskId` of this view (opened once, then the same device). */
  async disk(diskId: string): Promise<CowOverlayDevice> {
    if (this.state !== 'open') {
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_STATE', `test view ${this.viewId} is ${this.state}`, {
        viewId: this.viewId,
      });
    }
    checkPlainName('disk id', diskId);
    const open = this.devices.get(diskId);
    if (open !== undefined) return open;
    const lower = await this.host.openPointDisk(this.pointId, diskId);
    const dev = await CowOverlayDevice.open(this.storage, this.dir, diskId, lower);
    this.devices.set(diskId, dev);
    return dev;
  }

  /** Closes the disks; the view and its flushed writes stay for a later reopen. */
  async close(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'closed';
    await this.closeDevices();
  }

  /** Closes the disks and deletes the view: no file of it is left, and its point is unpinned. */
  async discard(): Promise<void> {
    if (this.state === 'discarded') return;
    this.state = 'discarded';
    await this.closeDevices();
    await this.host.forgetView(this.viewId);
  }

  private async closeDevices(): Promise<void> {
    for (const d of this.devices.values()) await d.close();
    this.devices.clear();
  }
}

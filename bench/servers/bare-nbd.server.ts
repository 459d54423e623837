/**
 * Bench-only NBD server: our `NbdServer` over a `FileBlockDevice` on one sparse raw file, optionally
 * behind the `ChangeTrackingFilter` (at the agent's tracking block size), with nothing else of the host
 * agent around it. It isolates the cost of change tracking on the write path (same device options as
 * the agent's disks, one filter more).
 *
 *   node --import tsx bench/servers/bare-nbd.server.ts --file F --socket S [--tracking DIR] [--sync-writes [--sync-writes-max BYTES]]
 *
 * Serves export "d0" on the Unix socket S; prints {"ready":true,...} on stdout once listening; stops
 * cleanly (closing the filter, which flushes) on SIGTERM/SIGINT.
 */
import { closeSync, openSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import type { BlockDevice } from '../../src/host/block-device/block-device.js';
import { TRACKING_BLOCK_BYTES } from '../../src/host/agent/disk-service.js';
import { FileBlockDevice, SYNC_WRITE_MAX_BYTES } from '../../src/host/block-device/file.block-device.js';
import { ChangeTrackingFilter } from '../../src/host/change-tracking/change-tracking.filter.js';
import { NbdServer } from '../../src/host/nbd/nbd-server.js';
import { NodeStorage } from '../../src/host/storage/node-storage.js';
import { SyncWriteDevice } from './sync-write.experiment.js';

const { values } = parseArgs({
  options: {
    file: { type: 'string' },
    socket: { type: 'string' },
    tracking: { type: 'string' },
    'sync-writes': { type: 'boolean' },
    'sync-writes-max': { type: 'string' },
    'sync-write-max': { type: 'string' },
  },
});
if (values.file === undefined || values.socket === undefined) {
  process.stderr.write('usage: bare-nbd.server.ts --file F --socket S [--tracking DIR]\n');
  process.exit(2);
}

const storage = new NodeStorage();
const file = await storage.open(values.file, 'readwrite');
// The device as the agent opens a disk (src/host/disks/disk-store.ts): small writes synchronous when
// idle, up to SYNC_WRITE_MAX_BYTES; `--sync-write-max 0` turns that off.
const inner = await FileBlockDevice.open(file, {
  syncWriteMaxBytes:
    values['sync-write-max'] !== undefined ? Number(values['sync-write-max']) : SYNC_WRITE_MAX_BYTES,
});
let device: BlockDevice = inner;
let syncFd: number | undefined;
if (values['sync-writes'] === true) {
  // Experiment: writes as synchronous pwrite on the main thread (bench/servers/sync-write.experiment.ts).
  syncFd = openSync(values.file, 'r+');
  device = new SyncWriteDevice(inner, syncFd, Number(values['sync-writes-max'] ?? Infinity));
}
let tracker: ChangeTrackingFilter | undefined;
if (values.tracking !== undefined) {
  tracker = await ChangeTrackingFilter.open(storage, device, {
    diskId: 'd0',
    statePath: join(values.tracking, 'd0.tracking'),
    cowPath: join(values.tracking, 'd0.cow'),
    trackingBlockBytes: TRACKING_BLOCK_BYTES, // as the agent tracks its disks
  });
  device = tracker;
}
const server = new NbdServer();
server.addExport('d0', device);
await server.listenUnix(values.socket);
process.stdout.write(
  `${JSON.stringify({ ready: true, pid: process.pid, tracking: tracker !== undefined })}\n`,
);

const stop = (): void => {
  process.off('SIGTERM', stop);
  process.off('SIGINT', stop);
  void (async () => {
    await server.close();
    if (tracker) {
      const s = tracker.stats();
      process.stderr.write(`${JSON.stringify({ trackingStats: s })}\n`);
    }
    await device.close();
    if (syncFd !== undefined) closeSync(syncFd);
    process.exit(0);
  })();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

/**
 * Bench-only probe of the ChangeTrackingFilter's own cost, run under callgrind by the
 * `tracking-instructions` suite: the same calls, one at a time (queue depth 1), on a FileBlockDevice
 * opened with every write through the thread pool, and on a ChangeTrackingFilter over a second such device, in
 * batches counted with callgrind_control from inside the process. The difference of instructions per
 * call is what the filter adds to a request, without the rest of the server and its noise (a server's
 * per-request count moves by up to 10 % between rounds, with the garbage collector's and the compiler's
 * threads).
 *
 *   valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=DIR/callgrind.%p.out \
 *     node --single-threaded --import tsx bench/servers/tracking-filter.probe.ts --dir DIR
 *
 * Prints one JSON line: {"ops":[{"op","bytes","calls","device":[per call...],"filter":[per call...]}]}.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { BlockDevice } from '../../src/host/block-device/block-device.js';
import { TRACKING_BLOCK_BYTES } from '../../src/host/agent/disk-service.js';
import { FileBlockDevice } from '../../src/host/block-device/file.block-device.js';
import { ChangeTrackingFilter } from '../../src/host/change-tracking/change-tracking.filter.js';
import { NodeStorage } from '../../src/host/storage/node-storage.js';
import { countInstructions } from '../lib/callgrind.js';

const DISK_BYTES = 2 * 1024 ** 3;
/** Uncounted batches per path and op before the counted ones. */
const WARMUP_BATCHES = 2;
/** Counted batches per path and op, in the order A B B A A B ... */
const COUNTED_BATCHES = 6;

interface Op {
  readonly op: 'write' | 'read';
  readonly bytes: number;
  /** Calls per batch. */
  readonly calls: number;
}

const OPS: readonly Op[] = [
  { op: 'write', bytes: 4096, calls: 20_000 },
  { op: 'write', bytes: 64 * 1024, calls: 5_000 },
  { op: 'write', bytes: 1024 * 1024, calls: 1_000 },
  { op: 'read', bytes: 4096, calls: 20_000 },
];

const { values } = parseArgs({ options: { dir: { type: 'string' } } });
if (values.dir === undefined) {
  process.stderr.write('usage: tracking-filter.probe.ts --dir DIR (run under callgrind)\n');
  process.exit(2);
}
const dir = values.dir;

const storage = new NodeStorage();
async function openDevice(name: string): Promise<FileBlockDevice> {
  const path = join(dir, name);
  const file = await storage.open(path, 'create');
  await file.truncate(DISK_BYTES);
  // Every write through the thread pool: the agent's device writes small ones synchronously while they
  // take under 2 ms, which under callgrind they sometimes do not, and the path would change mid-batch.
  return FileBlockDevice.open(file, { syncWriteMaxBytes: 0 });
}

const device = await openDevice('device.raw');
const filter = await ChangeTrackingFilter.open(storage, await openDevice('filtered.raw'), {
  diskId: 'd0',
  statePath: join(dir, 'd0.tracking'),
  cowPath: join(dir, 'd0.cow'),
  trackingBlockBytes: TRACKING_BLOCK_BYTES,
});

/** `calls` calls of `op` on `target`, one at a time, at offsets spread over the disk (the same on each path). */
async function batch(target: BlockDevice, op: Op, data: Buffer): Promise<void> {
  const slots = DISK_BYTES / op.bytes;
  for (let i = 0; i < op.calls; i++) {
    const offset = ((i * 2_654_435_761) % slots) * op.bytes;
    if (op.op === 'write') await target.write(offset, data, { fua: false });
    else await target.read(offset, op.bytes);
  }
}

const results = [];
for (const op of OPS) {
  const data = Buffer.alloc(op.bytes, 0x5a);
  for (let w = 0; w < WARMUP_BATCHES; w++) {
    await batch(device, op, data);
    await batch(filter, op, data);
  }
  const perCall: { device: number[]; filter: number[] } = { device: [], filter: [] };
  for (let b = 0; b < COUNTED_BATCHES; b++) {
    const order = b % 2 === 0 ? (['device', 'filter'] as const) : (['filter', 'device'] as const);
    for (const path of order) {
      const target = path === 'device' ? device : filter;
      const instructions = await countInstructions(process.pid, dir, () => batch(target, op, data));
      perCall[path].push(instructions / op.calls);
    }
  }
  results.push({ ...op, ...perCall });
}
await device.close();
await filter.close();
process.stdout.write(`${JSON.stringify({ ops: results })}\n`);

// The workload generator and the checker over the real data path: our NbdClient (a WorkloadTarget as
// is) -> FaultProxy -> our NbdServer -> MemoryBlockDevice, two disks of one VM. The connections are
// reset mid-run; whatever the server's devices hold then must be a recovery point at the reset time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seedFrom } from '../../src/domain/random.js';
import { NbdClient } from '../../src/guest/nbd-client.js';
import { MemoryBlockDevice } from '../../src/host/block-device/memory.block-device.js';
import { NbdServer } from '../../src/host/nbd/nbd-server.js';
import { checkRecoveryPoint, formatReport } from '../../src/testing/checker/recovery-point-checker.js';
import { FaultProxy } from '../../src/testing/faults/fault-proxy.js';
import { WorkloadGenerator } from '../../src/testing/workload/workload-generator.js';
import { monotonicNowMs } from '../../src/testing/workload/write-history.js';

const SEED = seedFrom(process.env.SECONDSITE_SEED, 4711);
const DISK_BYTES = 8 * 1024 * 1024;

test('a workload over NBD cut by a connection reset leaves a recovery point on the server', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'secondsite-nbd-workload-'));
  const server = new NbdServer();
  const devices = [0, 1].map(() => new MemoryBlockDevice({ sizeBytes: DISK_BYTES }));
  devices.forEach((d, i) => server.addExport(`disk${i}`, d));
  const socketPath = join(dir, 'nbd.sock');
  await server.listenUnix(socketPath);
  const proxy = await FaultProxy.start({
    target: { path: socketPath },
    listen: { path: join(dir, 'proxy.sock') },
  });
  const clients: NbdClient[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      clients.push(await NbdClient.connect({ socketPath: join(dir, 'proxy.sock'), exportName: `disk${i}` }));
    }
    const gen = new WorkloadGenerator({
      seed: SEED,
      disks: clients.map((target, diskId) => ({ diskId, sizeBytes: DISK_BYTES, target })),
      queueDepth: 16,
      maxBlocksPerWrite: 64,
      flushProbability: 0.3,
      durationMs: 20_000,
    });
    let cutMs = 0;
    const running = gen.run();
    await new Promise((r) => setTimeout(r, 600));
    cutMs = monotonicNowMs();
    proxy.resetConnections();
    const result = await running;
    assert.equal(result.stoppedBy, 'error', `seed ${SEED}: the reset did not reach the workload`);
    assert.ok(result.epochs > 10, `seed ${SEED}: only ${result.epochs} epochs before the reset`);
    const report = await checkRecoveryPoint({
      history: gen.history,
      disks: devices.map((device, diskId) => ({ diskId, device })),
      cutTimeMs: cutMs,
    });
    assert.ok(report.ok, `seed ${SEED}\n${formatReport(report)}`);
    assert.ok(report.stats.stampedBlocks > 0);
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    await proxy.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

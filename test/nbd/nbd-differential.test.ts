// Differential test (security.md S19): the same seeded random command stream goes to our server and to
// `nbdkit memory` through our client; every read, every error class and the final disk contents (by
// qemu-img compare, a third implementation reading both) must be identical. Replay a failure with
// SECONDSITE_SEED=<seed>.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NbdClient } from '../../src/guest/nbd-client.js';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { MiB, run, startNbdkitMemory, startServer, tempDir } from './nbd-test-kit.js';

const SIZE = 8 * MiB + 12345; // not a multiple of any page size
const OPS = 600;

type Outcome = { ok: true; data?: Buffer } | { ok: false; errno: number };

async function outcome(p: Promise<unknown>): Promise<Outcome> {
  try {
    const v = await p;
    return Buffer.isBuffer(v) ? { ok: true, data: v } : { ok: true };
  } catch (e) {
    const errno = (e as { details?: { errno?: unknown } }).details?.errno;
    if (typeof errno !== 'number') throw e;
    return { ok: false, errno };
  }
}

test('random command stream: our server and nbdkit memory agree', async () => {
  const seed = seedFrom(process.env['SECONDSITE_SEED'], 424242);
  const { dir, cleanup } = await tempDir();
  const ours = await startServer(dir, { disk: SIZE });
  const kit = await startNbdkitMemory(dir, SIZE);
  const a = await NbdClient.connect({ socketPath: ours.socketPath, exportName: 'disk' });
  const b = await NbdClient.connect({ socketPath: kit.socketPath });
  try {
    const rng = new Rng(seed);
    const range = (): [number, number] => {
      const pastEnd = rng.chance(0.05);
      const off = pastEnd ? SIZE - rng.int(4096) : rng.int(SIZE);
      const maxLen = rng.chance(0.1) ? 2 * MiB : 70_000;
      const len = 1 + rng.int(maxLen);
      return [off, pastEnd ? len + 4096 : Math.min(len, SIZE - off)];
    };
    let reads = 0;
    for (let i = 0; i < OPS; i++) {
      const op = rng.int(10);
      const [off, len] = range();
      const fua = rng.chance(0.2);
      let ra: Outcome;
      let rb: Outcome;
      let what: string;
      if (op < 4) {
        const data = Buffer.from(rng.fill(new Uint8Array(len)));
        what = `write ${off}+${len}`;
        [ra, rb] = await Promise.all([
          outcome(a.write(off, data, { fua })),
          outcome(b.write(off, data, { fua })),
        ]);
      } else if (op < 7) {
        what = `read ${off}+${len}`;
        [ra, rb] = await Promise.all([outcome(a.read(off, len)), outcome(b.read(off, len))]);
        reads++;
      } else if (op === 7) {
        what = `trim ${off}+${len}`;
        [ra, rb] = await Promise.all([
          outcome(a.trim(off, len, { fua })),
          outcome(b.trim(off, len, { fua })),
        ]);
      } else if (op === 8) {
        const noHole = rng.chance(0.5);
        what = `zero ${off}+${len} noHole=${noHole}`;
        [ra, rb] = await Promise.all([
          outcome(a.writeZeroes(off, len, { fua, noHole })),
          outcome(b.writeZeroes(off, len, { fua, noHole })),
        ]);
      } else {
        what = 'flush';
        [ra, rb] = await Promise.all([outcome(a.flush()), outcome(b.flush())]);
      }
      assert.equal(ra.ok, rb.ok, `op ${i} (${what}): success differs (seed ${seed})`);
      if (!ra.ok && !rb.ok)
        assert.equal(ra.errno, rb.errno, `op ${i} (${what}): errno differs (seed ${seed})`);
      if (ra.ok && rb.ok && ra.data && rb.data)
        assert.ok(ra.data.equals(rb.data), `op ${i} (${what}): read data differs (seed ${seed})`);
    }
    assert.ok(reads > OPS / 5, 'the stream did too few reads to compare');
    const cmp = await run('qemu-img', [
      'compare',
      '-f',
      'raw',
      '-F',
      'raw',
      ours.uri(),
      `nbd+unix:///?socket=${kit.socketPath}`,
    ]);
    assert.equal(cmp.code, 0, `final contents differ (seed ${seed}): ${cmp.stdout}${cmp.stderr}`);
    // The comparison can fail: change one byte on our side and compare again.
    await a.write(SIZE - 1, Buffer.from([((await b.read(SIZE - 1, 1))[0] ?? 0) ^ 0x80]));
    const cmp2 = await run('qemu-img', [
      'compare',
      '-f',
      'raw',
      '-F',
      'raw',
      ours.uri(),
      `nbd+unix:///?socket=${kit.socketPath}`,
    ]);
    assert.equal(cmp2.code, 1, 'qemu-img compare did not see a changed byte');
  } finally {
    await a.close();
    await b.close();
    await kit.stop();
    await ours.close();
    await cleanup();
  }
});

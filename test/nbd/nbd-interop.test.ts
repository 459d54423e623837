// Real NBD clients from Debian (qemu-io, qemu-img, nbdinfo, nbdcopy) against our server on a Unix
// socket. Each check also looks at the served device or a file the peer wrote, so a server that
// answered with wrong data fails here.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { MiB, run, runOk, startServer, tempDir, type TestServer } from './nbd-test-kit.js';

const seed = seedFrom(process.env['SECONDSITE_SEED'], 20261122);
let tmp: { dir: string; cleanup: () => Promise<void> };
let srv: TestServer;

before(async () => {
  tmp = await tempDir();
  srv = await startServer(tmp.dir, { disk: 64 * MiB, copy: 16 * MiB, ro: 1 * MiB }, {}, ['ro']);
});

after(async () => {
  await srv.close();
  await tmp.cleanup();
});

test('qemu-io: pattern write, verified read, flush, write -z, discard', async () => {
  const out = await runOk('qemu-io', [
    '-f',
    'raw',
    '-c',
    'write -P 0xab 4096 1M',
    '-c',
    'read -P 0xab 4096 1M',
    '-c',
    'flush',
    '-c',
    'write -z 65536 65536',
    '-c',
    'read -P 0 65536 65536',
    '-c',
    'write -P 0xcd 2M 512',
    '-c',
    'discard 4M 1M',
    '-c',
    'read -P 0 4M 1M',
    '-c',
    'write -f -P 0x11 8M 4096', // FUA
    srv.uri(),
  ]);
  assert.doesNotMatch(out, /fail|error/i, out);
  const dev = srv.devices.get('disk');
  assert.ok(dev);
  const head = await dev.read(4096, 65536 - 4096);
  assert.ok(
    head.every((b) => b === 0xab),
    'device does not hold the 0xab pattern qemu-io wrote',
  );
  assert.ok(
    (await dev.read(65536, 65536)).every((b) => b === 0),
    'write -z did not zero the range',
  );
  assert.ok((await dev.read(2 * MiB, 512)).every((b) => b === 0xcd));
  assert.ok((await dev.read(8 * MiB, 4096)).every((b) => b === 0x11));
  // A wrong pattern must be reported, so the verification above can fail.
  const wrong = await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0xcd 4096 4096', srv.uri()]);
  assert.match(wrong.stdout + wrong.stderr, /Pattern verification failed/);
});

test('qemu-img info reports the export size', async () => {
  const info = JSON.parse(await runOk('qemu-img', ['info', '--output=json', srv.uri()])) as {
    'virtual-size': number;
  };
  assert.equal(info['virtual-size'], 64 * MiB);
});

test('qemu-img convert to and from our export, and compare', async () => {
  const rng = new Rng(seed);
  const src = Buffer.alloc(16 * MiB);
  for (let i = 0; i < 40; i++) {
    const off = rng.int(16 * MiB - 300_000);
    src.set(rng.fill(new Uint8Array(rng.int(300_000))), off);
  }
  const srcPath = join(tmp.dir, 'src.raw');
  const outPath = join(tmp.dir, 'out.raw');
  await writeFile(srcPath, src);
  await runOk('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', srcPath, srv.uri('copy')]);
  await runOk('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', srcPath, srv.uri('copy')]);
  await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', srv.uri('copy'), outPath]);
  assert.ok(
    (await readFile(outPath)).equals(src),
    `round trip through qemu-img convert differs (seed ${seed})`,
  );
  const dev = srv.devices.get('copy');
  assert.ok(dev);
  await dev.write(12345, Buffer.from([src[12345]! ^ 0xff]), { fua: false });
  const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', srcPath, srv.uri('copy')]);
  assert.equal(cmp.code, 1, `qemu-img compare should see the changed byte: ${cmp.stdout}`);
});

test('nbdinfo: export details, --list, --map', async () => {
  const info = JSON.parse(await runOk('nbdinfo', ['--json', srv.uri()])) as {
    protocol: string;
    exports: Record<string, unknown>[];
  };
  assert.equal(info.protocol, 'newstyle-fixed');
  const e = info.exports[0];
  assert.ok(e);
  assert.equal(e['export-size'], 64 * MiB);
  assert.equal(e['can_multi_conn'], true);
  assert.equal(e['can_fua'], true);
  assert.equal(e['block_size_minimum'], 1);
  assert.equal(e['block_size_preferred'], 4096);
  assert.equal(e['block_size_maximum'], 32 * MiB);
  assert.deepEqual(e['contexts'], ['base:allocation']);
  const list = JSON.parse(await runOk('nbdinfo', ['--list', '--json', srv.uri('')])) as {
    exports: { 'export-name': string; is_read_only: boolean }[];
  };
  const names = list.exports.map((x) => x['export-name']).sort();
  assert.deepEqual(names, ['copy', 'disk', 'ro']);
  assert.equal(list.exports.find((x) => x['export-name'] === 'ro')?.is_read_only, true);

  const { dir, cleanup } = await tempDir();
  try {
    const s2 = await startServer(dir, { m: 4 * MiB });
    await s2.devices.get('m')?.write(MiB, Buffer.alloc(128 * 1024, 1), { fua: false });
    const map = JSON.parse(await runOk('nbdinfo', ['--map', '--json', s2.uri('m')])) as {
      offset: number;
      length: number;
      type: number;
    }[];
    assert.deepEqual(
      map.map((m) => [m.offset, m.length, m.type]),
      [
        [0, MiB, 3],
        [MiB, 128 * 1024, 0],
        [MiB + 128 * 1024, 3 * MiB - 128 * 1024, 3],
      ],
    );
    await s2.close();
  } finally {
    await cleanup();
  }
});

test('nbdcopy in (with --flush) and out', async () => {
  const rng = new Rng(seed + 1);
  const src = Buffer.from(rng.fill(new Uint8Array(8 * MiB)));
  src.fill(0, 2 * MiB, 5 * MiB); // a zero run nbdcopy may skip
  const srcPath = join(tmp.dir, 'nbdcopy-src.raw');
  const outPath = join(tmp.dir, 'nbdcopy-out.raw');
  await writeFile(srcPath, src);
  await runOk('nbdcopy', ['--flush', srcPath, srv.uri('copy')]);
  const dev = srv.devices.get('copy');
  assert.ok(dev);
  assert.ok((await dev.read(0, 8 * MiB)).equals(src), `nbdcopy in wrote different data (seed ${seed})`);
  await runOk('nbdcopy', [srv.uri('copy'), outPath]);
  const out = await readFile(outPath);
  assert.equal(out.length, 16 * MiB);
  assert.ok(out.subarray(0, 8 * MiB).equals(src), `nbdcopy out read different data (seed ${seed})`);
});

test('read-only export: writes fail with EPERM, reads work', async () => {
  const w = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 1 0 4096', srv.uri('ro')]);
  assert.match(w.stdout + w.stderr, /Operation not permitted|read-only|Permission denied/i);
  await runOk('qemu-io', ['-f', 'raw', '-r', '-c', 'read -P 0 0 4096', srv.uri('ro')]);
});

test('fio (libnbd engine) at QD32 writes and verifies every block through our server', async () => {
  const out = await runOk(
    'fio',
    [
      '--name=verify',
      '--ioengine=nbd',
      `--uri=${srv.uri('copy')}`,
      '--rw=randwrite',
      '--bs=4k',
      '--iodepth=32',
      '--size=8M',
      '--verify=crc32c',
      '--do_verify=1',
      '--verify_state_save=0',
      '--output-format=json',
    ],
    60_000,
  );
  const json = JSON.parse(out.slice(out.indexOf('{'))) as {
    jobs: { error: number; write: { io_bytes: number } }[];
  };
  assert.equal(json.jobs[0]?.error, 0);
  assert.equal(json.jobs[0]?.write.io_bytes, 8 * MiB);
});

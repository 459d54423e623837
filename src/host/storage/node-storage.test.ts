import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile, mkdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isSecondsiteError } from '../../domain/errors.js';
import { MiB } from '../../domain/units.js';
import { NodeStorage } from './node-storage.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'secondsite-node-storage-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('write then read round-trips, short read at EOF', async () => {
  const storage = new NodeStorage();
  const f = await storage.open(join(dir, 'a.bin'), 'create');
  const data = Buffer.from('hello, sparse world');
  await f.write(data, 0, data.length, 100);
  await f.datasync();
  assert.equal(await f.sizeBytes(), 100 + data.length);
  const buf = Buffer.alloc(64);
  const n = await f.read(buf, 0, 64, 100);
  assert.equal(n, data.length);
  assert.equal(buf.subarray(0, n).toString(), data.toString());
  const head = Buffer.alloc(100, 7);
  assert.equal(await f.read(head, 0, 100, 0), 100);
  assert.ok(
    head.every((b) => b === 0),
    'the gap before the first write reads as zeros',
  );
  await f.close();
  await f.close();
});

test('writeScattered lands every write it can and reports each failure as a Node-style error', async () => {
  const storage = new NodeStorage();
  const f = await storage.open(join(dir, 'scattered.bin'), 'create');
  const results = await f.writeScattered?.([
    { data: Buffer.alloc(100, 1), positionBytes: 0 },
    { data: Buffer.alloc(100, 2), positionBytes: 2 ** 52 },
    { data: Buffer.alloc(100, 3), positionBytes: 1000 },
  ]);
  assert.ok(results, 'NodeStorage offers writeScattered');
  assert.equal(results.length, 3);
  assert.equal(results[0], undefined);
  assert.equal(results[2], undefined);
  const e = results[1] as Error & { code?: string; syscall?: string };
  assert.equal(e.code, 'EFBIG', e.message);
  assert.equal(e.syscall, 'pwrite');
  const buf = Buffer.alloc(1100);
  assert.equal(await f.read(buf, 0, 1100, 0), 1100);
  assert.ok(buf.subarray(0, 100).every((b) => b === 1));
  assert.ok(buf.subarray(1000, 1100).every((b) => b === 3));
  await f.close();
});

test('allocation reports holes and data of a sparse file; punchHole deallocates and reads zeros', async () => {
  const storage = new NodeStorage();
  const f = await storage.open(join(dir, 'sparse.raw'), 'create');
  await f.truncate(16 * MiB);
  const block = Buffer.alloc(MiB, 0xab);
  await f.write(block, 0, block.length, 4 * MiB);
  await f.write(block, 0, block.length, 10 * MiB);
  assert.deepEqual(await f.allocation(0, 16 * MiB), [
    { offsetBytes: 0, lengthBytes: 4 * MiB, data: false },
    { offsetBytes: 4 * MiB, lengthBytes: MiB, data: true },
    { offsetBytes: 5 * MiB, lengthBytes: 5 * MiB, data: false },
    { offsetBytes: 10 * MiB, lengthBytes: MiB, data: true },
    { offsetBytes: 11 * MiB, lengthBytes: 5 * MiB, data: false },
  ]);
  // A sub-range that starts inside data and ends inside a hole.
  assert.deepEqual(await f.allocation(4 * MiB + 4096, 2 * MiB), [
    { offsetBytes: 4 * MiB + 4096, lengthBytes: MiB - 4096, data: true },
    { offsetBytes: 5 * MiB, lengthBytes: MiB + 4096, data: false },
  ]);
  await f.punchHole(4 * MiB, MiB);
  assert.equal(await f.sizeBytes(), 16 * MiB, 'punching keeps the size');
  const back = Buffer.alloc(MiB, 1);
  await f.read(back, 0, MiB, 4 * MiB);
  assert.ok(back.every((b) => b === 0));
  assert.deepEqual(await f.allocation(0, 16 * MiB), [
    { offsetBytes: 0, lengthBytes: 10 * MiB, data: false },
    { offsetBytes: 10 * MiB, lengthBytes: MiB, data: true },
    { offsetBytes: 11 * MiB, lengthBytes: 5 * MiB, data: false },
  ]);
  await f.datasync();
  // The kernel agrees: du counts only the one allocated MiB.
  const st = await stat(join(dir, 'sparse.raw'));
  assert.equal(st.blocks * 512, MiB, `allocated bytes per stat: ${st.blocks * 512}`);
  const map = execFileSync('qemu-img', ['map', '--output=json', '-f', 'raw', join(dir, 'sparse.raw')], {
    encoding: 'utf8',
  });
  const dataExtents = (JSON.parse(map) as { start: number; length: number; data: boolean }[]).filter(
    (e) => e.data,
  );
  assert.deepEqual(
    dataExtents.map((e) => [e.start, e.length]),
    [[10 * MiB, MiB]],
  );
  await f.close();
});

test('list, exists, rename, syncDir, unlink, removeTree', async () => {
  const storage = new NodeStorage();
  const sub = join(dir, 'tree', 'deep');
  await storage.mkdir(sub);
  await storage.mkdir(sub);
  assert.deepEqual(await storage.list(join(dir, 'missing')), []);
  for (const name of ['b', 'a', 'c']) await (await storage.open(join(sub, name), 'create')).close();
  assert.deepEqual(await storage.list(sub), ['a', 'b', 'c']);
  await storage.rename(join(sub, 'a'), join(sub, 'c'));
  await storage.syncDir(sub);
  assert.deepEqual(await storage.list(sub), ['b', 'c']);
  await storage.unlink(join(sub, 'b'));
  assert.equal(await storage.exists(join(sub, 'b')), false);
  assert.equal(await storage.exists(join(sub, 'c')), true);
  await assert.rejects(
    storage.open(join(sub, 'nope'), 'read'),
    (e: NodeJS.ErrnoException) => e.code === 'ENOENT',
  );
  await storage.removeTree(join(dir, 'tree'));
  assert.equal(await storage.exists(join(dir, 'tree')), false);
});

test('confinement refuses paths and symlinks that leave the root', async () => {
  const root = join(dir, 'root');
  const outside = join(dir, 'outside');
  await mkdir(root);
  await mkdir(outside);
  await writeFile(join(outside, 'secret'), 'x');
  await symlink(outside, join(root, 'escape'));
  await symlink(join(outside, 'secret'), join(root, 'link.raw'));
  const storage = new NodeStorage({ confineTo: root });
  const unsafe = (e: unknown): boolean => isSecondsiteError(e, 'SECONDSITE_ERR_UNSAFE_PATH');
  await assert.rejects(storage.open(join(root, '..', 'outside', 'secret'), 'read'), unsafe);
  await assert.rejects(storage.open('/etc/passwd', 'read'), unsafe);
  await assert.rejects(storage.open(join(root, 'escape', 'secret'), 'read'), unsafe);
  await assert.rejects(storage.open(join(root, 'escape', 'new'), 'create'), unsafe);
  await assert.rejects(storage.open(join(root, 'a\0b'), 'create'), unsafe);
  await assert.rejects(storage.removeTree(root), unsafe);
  // O_NOFOLLOW: a symlink planted where a file is expected is refused, not followed.
  await assert.rejects(storage.open(join(root, 'link.raw'), 'readwrite'), (e: NodeJS.ErrnoException) =>
    ['ELOOP', 'SECONDSITE_ERR_UNSAFE_PATH'].includes(String(e.code)),
  );
  const ok = await storage.open(join(root, 'fine.raw'), 'create');
  await ok.close();
  assert.deepEqual(await storage.list(root), ['escape', 'fine.raw', 'link.raw']);
});

test('a closed file refuses further use (its fd number may be reused)', async () => {
  const storage = new NodeStorage();
  const f = await storage.open(join(dir, 'closed.bin'), 'create');
  await f.close();
  await assert.rejects(f.write(Buffer.alloc(1), 0, 1, 0), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_INTERNAL'),
  );
  await assert.rejects(f.allocation(0, 1), (e) => isSecondsiteError(e));
});

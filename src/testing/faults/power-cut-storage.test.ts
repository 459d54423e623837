import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seedFrom } from '../../domain/random.js';
import type { Storage, StorageFile } from '../../host/storage/storage.js';
import { PowerCutStorage, isPowerLoss, type PowerCutMode } from './power-cut-storage.js';

const SEED = seedFrom(process.env.SECONDSITE_SEED, 5150);

async function readAll(file: StorageFile): Promise<Buffer> {
  const size = await file.sizeBytes();
  const buf = Buffer.alloc(size);
  await file.read(buf, 0, size, 0);
  return buf;
}

async function writeFile(storage: Storage, path: string, text: string, sync: boolean): Promise<void> {
  const f = await storage.open(path, 'create');
  await f.truncate(0);
  await f.write(Buffer.from(text), 0, Buffer.byteLength(text), 0);
  if (sync) await f.datasync();
  await f.close();
}

test('behaves as a Storage: files, names, errors, allocation', async () => {
  const s = new PowerCutStorage({ seed: SEED });
  await s.mkdir('/a/b');
  assert.deepEqual(await s.list('/a'), ['b']);
  await assert.rejects(s.open('/a/b/x', 'read'), { code: 'ENOENT' });
  await assert.rejects(s.open('/nope/x', 'create'), { code: 'ENOENT' });
  await assert.rejects(s.open('/a/b', 'readwrite'), { code: 'EISDIR' });
  const f = await s.open('/a/b/x', 'create');
  await f.write(Buffer.from('hello world'), 0, 11, 100);
  assert.equal(await f.sizeBytes(), 111);
  const buf = Buffer.alloc(20, 0xff);
  assert.equal(await f.read(buf, 0, 20, 0), 20);
  assert.deepEqual(buf, Buffer.alloc(20));
  assert.equal(await f.read(buf, 0, 20, 105), 6);
  assert.equal(buf.subarray(0, 6).toString(), ' world');

  await f.truncate(3 * 4096 + 10);
  await f.write(Buffer.alloc(10, 1), 0, 10, 2 * 4096);
  assert.deepEqual(await f.allocation(0, 4 * 4096), [
    { offsetBytes: 0, lengthBytes: 4096, data: true },
    { offsetBytes: 4096, lengthBytes: 4096, data: false },
    { offsetBytes: 8192, lengthBytes: 4096, data: true },
    { offsetBytes: 12288, lengthBytes: 4096, data: false },
  ]);
  await f.punchHole(0, 4096);
  assert.equal((await f.allocation(0, 4096))[0]?.data, false);
  await f.punchHole(2 * 4096, 5);
  const part = Buffer.alloc(10);
  await f.read(part, 0, 10, 2 * 4096);
  assert.deepEqual([...part], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
  assert.equal(await f.sizeBytes(), 3 * 4096 + 10);

  const ro = await s.open('/a/b/x', 'read');
  await assert.rejects(ro.write(Buffer.from('x'), 0, 1, 0), { code: 'EBADF' });
  await s.rename('/a/b/x', '/a/y');
  assert.equal(await s.exists('/a/b/x'), false);
  assert.equal(await s.exists('/a/y'), true);
  assert.deepEqual(await s.list('/a'), ['b', 'y']);
  await assert.rejects(s.unlink('/a/b'), { code: 'EISDIR' });
  await assert.rejects(s.unlink('/a/b/x'), { code: 'ENOENT' });
  await assert.rejects(s.rename('/a/zz', '/a/q'), { code: 'ENOENT' });
  await s.unlink('/a/y');
  assert.deepEqual(await s.list('/a'), ['b']);
  await s.removeTree('/a');
  assert.deepEqual(await s.list('/'), []);
  await s.removeTree('/a'); // no-op when missing
  assert.deepEqual(await s.list('/missing'), []);
});

test('power cut keeps only what was synced: file data by datasync, names by syncDir', async () => {
  const s = new PowerCutStorage({ seed: SEED });
  await s.mkdir('/d');
  await s.syncDir('/');
  await writeFile(s, '/d/synced', 'data', true);
  await s.syncDir('/d');
  await writeFile(s, '/d/data-only', 'data', true); // name never synced
  await writeFile(s, '/d/name-only', 'data', false);
  await s.syncDir('/d'); // name of both durable now, data of name-only not
  await writeFile(s, '/d/nothing', 'data', false);
  const g = await s.open('/d/synced', 'readwrite');
  await g.write(Buffer.from('DA'), 0, 2, 0); // unsynced overwrite
  assert.ok(s.unsyncedOperations > 0);

  s.powerCut('none');
  assert.deepEqual(await s.list('/d'), ['data-only', 'name-only', 'synced']);
  assert.equal((await readAll(await s.open('/d/synced', 'read'))).toString(), 'data');
  assert.equal((await readAll(await s.open('/d/data-only', 'read'))).toString(), 'data');
  assert.equal(await (await s.open('/d/name-only', 'read')).sizeBytes(), 0);
  // Old handles are dead after the reboot.
  await assert.rejects(g.read(Buffer.alloc(1), 0, 1, 0), { code: 'SECONDSITE_ERR_IO' });

  // An unsynced mkdir is lost with everything under it, even synced files.
  await s.mkdir('/e');
  await writeFile(s, '/e/f', 'x', true);
  await s.syncDir('/e');
  s.powerCut('none');
  assert.equal(await s.exists('/e'), false);
  assert.equal(await s.exists('/e/f'), false);
  // ...unless mkdir is configured durable.
  const lenient = new PowerCutStorage({ durableMkdir: true });
  await lenient.mkdir('/e');
  lenient.powerCut('none');
  assert.equal(await lenient.exists('/e'), true);
});

test('write-temp, datasync, rename, syncDir is atomic under every cut mode', async () => {
  const modes: PowerCutMode[] = ['none', 'random-subset', 'prefix'];
  const seen = new Set<string>();
  for (let i = 0; i < 300; i++) {
    const seed = SEED + i;
    const s = new PowerCutStorage({ seed });
    await s.mkdir('/m');
    await s.syncDir('/');
    await writeFile(s, '/m/state', 'old-old-old', true);
    await s.syncDir('/m');
    await writeFile(s, '/m/state.tmp', 'new-new-new-new', true);
    await s.rename('/m/state.tmp', '/m/state');
    const synced = i % 2 === 0;
    if (synced) await s.syncDir('/m');
    s.powerCut({ mode: modes[i % 3] as PowerCutMode, tear: true });
    const text = (await readAll(await s.open('/m/state', 'read'))).toString();
    assert.ok(
      text === 'old-old-old' || text === 'new-new-new-new',
      `seed ${seed}: got ${JSON.stringify(text)}`,
    );
    if (synced) assert.equal(text, 'new-new-new-new', `seed ${seed}`);
    seen.add(text);
  }
  assert.equal(seen.size, 2, 'both outcomes occur when the rename is not synced');
});

test("'prefix' keeps a prefix in completion order, 'random-subset' any subset, 'none' nothing", async () => {
  const shapes: Record<PowerCutMode, Set<string>> = {
    none: new Set(),
    prefix: new Set(),
    'random-subset': new Set(),
  };
  for (let i = 0; i < 200; i++) {
    for (const mode of ['none', 'prefix', 'random-subset'] as const) {
      const seed = SEED + i;
      const s = new PowerCutStorage({ seed });
      const f = await s.open('/log', 'create');
      await f.truncate(8 * 512);
      await f.datasync();
      await s.syncDir('/');
      for (let k = 0; k < 8; k++) await f.write(Buffer.alloc(512, k + 1), 0, 512, k * 512);
      s.powerCut(mode);
      const data = await readAll(await s.open('/log', 'read'));
      const present = [...Array(8).keys()].map((k) => (data[k * 512] === k + 1 ? '1' : '0')).join('');
      shapes[mode].add(present);
      if (mode === 'none') assert.equal(present, '00000000', `seed ${seed}`);
      if (mode === 'prefix') assert.match(present, /^1*0*$/, `seed ${seed}: ${present}`);
    }
  }
  assert.ok(shapes.prefix.size >= 6, `prefix lengths seen: ${[...shapes.prefix].join(' ')}`);
  assert.ok(
    [...shapes['random-subset']].some((p) => !/^1*0*$/.test(p)),
    'random-subset produced only prefixes',
  );
});

test('tearing splits a write at 512-byte sectors, never inside one', async () => {
  let torn = 0;
  for (let i = 0; i < 100; i++) {
    const seed = SEED + i;
    const s = new PowerCutStorage({ seed });
    const f = await s.open('/t', 'create');
    await f.write(Buffer.alloc(8192, 0xaa), 0, 8192, 0);
    await f.datasync();
    await s.syncDir('/');
    await f.write(Buffer.alloc(8192 - 300, 0xbb), 0, 8192 - 300, 300);
    s.powerCut({ mode: 'prefix', tear: true });
    const data = await readAll(await s.open('/t', 'read'));
    assert.ok(
      data.subarray(0, 300).every((b) => b === 0xaa),
      `seed ${seed}`,
    );
    const sectors = new Set<string>();
    for (let at = 300; at < 8192;) {
      const next = Math.min(8192, (Math.floor(at / 512) + 1) * 512);
      const piece = data.subarray(at, next);
      assert.ok(
        piece.every((b) => b === piece[0]),
        `seed ${seed}: sector at ${at} is mixed`,
      );
      sectors.add(String(piece[0]));
      at = next;
    }
    if (sectors.size === 2) torn++;
  }
  assert.ok(torn > 10, `only ${torn} of 100 cuts tore the write`);
});

test('failNextSync: the sync fails once, the data stays visible but is never durable (fsyncgate)', async () => {
  const s = new PowerCutStorage({ seed: SEED });
  const f = await s.open('/f', 'create');
  await s.syncDir('/');
  await f.write(Buffer.from('v1'), 0, 2, 0);
  await f.datasync();
  await f.write(Buffer.from('v2'), 0, 2, 0);
  s.failNextSync('/f');
  await assert.rejects(f.datasync(), { code: 'EIO' });
  assert.equal((await readAll(f)).toString(), 'v2', 'page cache still shows the new data');
  await f.datasync(); // "succeeds", but the dirty data was dropped
  s.powerCut('random-subset');
  assert.equal((await readAll(await s.open('/f', 'read'))).toString(), 'v1');

  await s.mkdir('/dir');
  s.failNextSync('/');
  await assert.rejects(s.syncDir('/'), { code: 'EIO' });
  await s.syncDir('/');
  s.powerCut('prefix');
  assert.equal(await s.exists('/dir'), false);

  const g = await s.open('/f', 'readwrite');
  s.failNextWrite('/f');
  await assert.rejects(g.write(Buffer.from('x'), 0, 1, 0), { code: 'ENOSPC' });
  await g.write(Buffer.from('x'), 0, 1, 0);
});

test('clone() forks the whole state, so one run can be cut many ways', async () => {
  const s = new PowerCutStorage({ seed: SEED });
  const f = await s.open('/c', 'create');
  await f.write(Buffer.from('abc'), 0, 3, 0);
  const forks = [s.clone(1), s.clone(2)];
  forks[0]!.powerCut('none');
  assert.equal(await forks[0]!.exists('/c'), false);
  assert.equal(await forks[1]!.exists('/c'), true);
  assert.equal(forks[1]!.readFileSync('/c')?.toString(), 'abc');
  assert.equal(await s.exists('/c'), true);
  // The original's handles still work on the original; the forks are independent of it.
  await f.write(Buffer.from('X'), 0, 1, 0);
  assert.equal(forks[1]!.readFileSync('/c')?.toString(), 'abc');
  assert.equal(s.readFileSync('/c')?.toString(), 'Xbc');
});

test('armPowerCut crashes at the n-th mutating call; every crash point of an atomic update is safe', async () => {
  const update = async (s: PowerCutStorage): Promise<void> => {
    await writeFile(s, '/m/state.tmp', 'new-new-new-new', true);
    await s.rename('/m/state.tmp', '/m/state');
    await s.syncDir('/m');
  };
  let crashes = 0;
  for (let n = 0; ; n++) {
    const s = new PowerCutStorage({ seed: SEED + n });
    await s.mkdir('/m');
    await s.syncDir('/');
    await writeFile(s, '/m/state', 'old-old-old', true);
    await s.syncDir('/m');
    s.armPowerCut(n, { mode: n % 2 ? 'random-subset' : 'prefix', tear: true });
    let crashed = false;
    try {
      await update(s);
    } catch (e) {
      assert.ok(isPowerLoss(e), `crash point ${n}: ${String(e)}`);
      crashed = true;
    }
    if (crashed) {
      assert.ok(s.poweredOff);
      await assert.rejects(s.exists('/m/state'), (e) => isPowerLoss(e));
      s.reboot();
      crashes++;
    }
    const text = (await readAll(await s.open('/m/state', 'read'))).toString();
    assert.ok(
      text === 'old-old-old' || text === 'new-new-new-new',
      `crash point ${n}: ${JSON.stringify(text)}`,
    );
    if (!crashed) {
      assert.equal(text, 'new-new-new-new');
      break;
    }
  }
  // open(create), truncate, write, datasync, rename, syncDir: six mutating calls to crash at.
  assert.equal(crashes, 6);
});

test('writeScattered and writev are one crash point each; writeNow throws; failNextWrite fails one write of a batch', async () => {
  const s = new PowerCutStorage({ seed: SEED });
  const f = await s.open('/b', 'create');
  await s.syncDir('/');
  const results = await (f.writeScattered as NonNullable<StorageFile['writeScattered']>)([
    { data: Buffer.from('aa'), positionBytes: 0 },
    { data: Buffer.from('bb'), positionBytes: 4 },
  ]);
  assert.deepEqual(results, [undefined, undefined]);
  s.failNextWrite('/b');
  const failed = await (f.writeScattered as NonNullable<StorageFile['writeScattered']>)([
    { data: Buffer.from('cc'), positionBytes: 8 },
    { data: Buffer.from('dd'), positionBytes: 2 },
  ]);
  assert.equal((failed[0] as { code?: string } | undefined)?.code, 'ENOSPC');
  assert.equal(failed[1], undefined, 'the other write of the batch lands');
  (f.writeNow as NonNullable<StorageFile['writeNow']>)(Buffer.from('e'), 0, 1, 6);
  await (f.writev as NonNullable<StorageFile['writev']>)([Buffer.from('f'), Buffer.from('g')], 10);
  assert.equal((await readAll(f)).toString('latin1'), 'aaddbbe\0\0\0fg');
  await f.datasync();
  // The next mutating call is the batch: power goes off at it, as one call, and nothing of it stays.
  s.armPowerCut(0, 'prefix');
  await assert.rejects(
    (f.writeScattered as NonNullable<StorageFile['writeScattered']>)([
      { data: Buffer.from('zz'), positionBytes: 0 },
    ]),
    (e) => isPowerLoss(e),
  );
  assert.throws(
    () => (f.writeNow as NonNullable<StorageFile['writeNow']>)(Buffer.from('z'), 0, 1, 0),
    (e) => isPowerLoss(e),
  );
  s.reboot();
  assert.equal((await readAll(await s.open('/b', 'read'))).toString('latin1'), 'aaddbbe\0\0\0fg');
});

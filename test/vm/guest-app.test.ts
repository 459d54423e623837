// The guest application against a real NbdServer serving image files: rate, durability across power
// off (SIGKILL) and reboot, boot-time validation, quiesce / thaw / auto-thaw, graceful stops, disk loss.
import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { Rng } from '../../src/domain/random.js';
import { slotOfSeq, slotOffsetBytes } from '../../src/guest/app/guest-log.format.js';
import { registerChildCleanup, type ChildHandle } from '../../src/testing/process/child-process.js';
import { DiskHost, guestCall, MiB, removeDir, SEED, sleep, spawnGuest, tempDir } from './vm-test-kit.js';

registerChildCleanup();

let dir: string;
let host: DiskHost;
let diskNo = 0;

before(async () => {
  dir = await tempDir();
  host = await DiskHost.start(dir);
});
after(async () => {
  await host.close();
  await removeDir(dir);
});

async function newDisk(sizeBytes = 4 * MiB): Promise<string> {
  const name = `disk${++diskNo}`;
  await host.addDisk(name, sizeBytes);
  return name;
}

interface Booted {
  child: ChildHandle;
  ready: Record<string, unknown>;
  to: { host: string; port: number };
}

async function boot(disk: string, settings: Record<string, unknown> = {}): Promise<Booted> {
  const child = await spawnGuest(dir, {
    guestId: `g-${disk}`,
    disks: [host.uri(disk)],
    listen: [{ host: '127.0.0.1', port: 0 }],
    ...settings,
  });
  const ready = await child.waitForReady(20_000);
  const listen = ready.listen as { host: string; port: number }[];
  return { child, ready, to: listen[0] as { host: string; port: number } };
}

async function state(b: Booted): Promise<Record<string, unknown>> {
  const r = await guestCall(b.to, 'GET', '/state');
  assert.equal(r.status, 200);
  return r.body;
}

const num = (v: unknown): number => v as number;

/** Polls GET /state until `ok` (or fails after timeoutMs with `what` and the last state). */
async function until(
  b: Booted,
  ok: (s: Record<string, unknown>) => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await state(b);
    if (ok(s)) return s;
    if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(s)}`);
    await sleep(25);
  }
}

test('records are written at the configured rate, flushed, and validate on disk after a shutdown', async () => {
  const disk = await newDisk();
  const g = await boot(disk, {
    recordsPerSec: 100,
    payloadBytes: 300,
    flushEveryRecords: 20,
    flushEveryMs: 100,
  });
  assert.equal(g.ready.bootSeq, 0);
  const s0 = await state(g);
  const t0 = performance.now();
  await sleep(2000);
  const s1 = await state(g);
  const elapsedS = (performance.now() - t0) / 1000;
  const rate = (num(s1.lastWrittenSeq) - num(s0.lastWrittenSeq)) / elapsedS;
  // Never faster than configured; the lower bound is loose because a loaded CI machine slows the
  // guest's serial writes and flushes down (the rate is a ceiling the guest catches up to, not a promise).
  assert.ok(rate > 40 && rate < 125, `measured ${rate.toFixed(1)} records/s for 100 configured`);
  assert.equal(s1.state, 'running');
  assert.equal(s1.logValid, true);
  assert.equal(s1.payloadBytes, 300);
  assert.ok(num(s1.lastDurableSeq) <= num(s1.lastWrittenSeq));
  assert.ok(num(s1.lastWrittenSeq) - num(s1.lastDurableSeq) <= 20, JSON.stringify(s1));
  const stop = await guestCall(g.to, 'POST', '/shutdown');
  assert.equal(stop.status, 200);
  const exit = await g.child.exited;
  assert.equal(exit.code, 0);
  const report = await host.validate(disk);
  assert.equal(report.valid, true, JSON.stringify(report.problem));
  assert.equal(report.lastSeq, stop.body.lastDurableSeq);
  assert.equal(report.firstSeq, 1);
  assert.equal(report.lastRecord?.guestId, `g-${disk}`);
});

test('seeded: power off (SIGKILL) and reboot from the same disk keeps every durable record and continues', async () => {
  const rng = new Rng(SEED);
  for (let c = 0; c < 3; c++) {
    const disk = await newDisk(rng.pick([1, 2]) * MiB);
    const settings = {
      recordsPerSec: 100 + rng.int(700),
      payloadBytes: rng.int(1500),
      flushEveryRecords: 1 + rng.int(40),
      flushEveryMs: 20 + rng.int(200),
    };
    let seenDurable = 0;
    let incarnation = 0;
    for (let b = 0; b < 3; b++) {
      const g = await boot(disk, settings);
      const msg = `seed ${SEED} case ${c} boot ${b} ${JSON.stringify(settings)} ready ${JSON.stringify(g.ready)}`;
      assert.ok(
        num(g.ready.bootSeq) >= seenDurable,
        `bootSeq below the last durable seq ${seenDurable}: ${msg}`,
      );
      assert.equal(g.ready.incarnation, incarnation + 1, msg);
      incarnation = num(g.ready.incarnation);
      await sleep(150 + rng.int(500));
      const s = await until(
        g,
        (v) => num(v.lastWrittenSeq) > num(g.ready.bootSeq),
        `no progress after boot: ${msg}`,
      );
      seenDurable = num(s.lastDurableSeq);
      await g.child.kill9();
      const report = await host.validate(disk);
      assert.equal(report.valid, true, `${msg}: ${JSON.stringify(report.problem)}`);
      assert.ok(report.lastSeq >= seenDurable, msg);
    }
  }
});

test('a corrupt record in the middle of the log makes boot fail with a clear, machine-readable error', async () => {
  const disk = await newDisk(1 * MiB);
  const g = await boot(disk, { recordsPerSec: 2000, payloadBytes: 100, flushEveryRecords: 50 });
  while (num((await state(g)).lastWrittenSeq) < 60) await sleep(20);
  await guestCall(g.to, 'POST', '/shutdown');
  assert.equal((await g.child.exited).code, 0);
  const before = await host.validate(disk);
  assert.equal(before.valid, true);
  const f = before.format;
  assert.ok(f);

  // A torn slot right after the newest record is the end of the log: boot accepts it.
  const fh = await open(host.imagePath(disk), 'r+');
  try {
    await fh.write(Buffer.alloc(200, 0x5a), 0, 200, slotOffsetBytes(f, slotOfSeq(f, before.lastSeq + 1)));
    await fh.sync();
  } finally {
    await fh.close();
  }
  const g2 = await boot(disk, { recordsPerSec: 0 });
  assert.equal(g2.ready.bootSeq, before.lastSeq);
  assert.equal(g2.ready.bootTornTail, true);
  await g2.child.stop();

  // A flipped byte in record 10: boot refuses.
  const fh2 = await open(host.imagePath(disk), 'r+');
  try {
    const at = slotOffsetBytes(f, slotOfSeq(f, 10)) + 120;
    const b = Buffer.alloc(1);
    await fh2.read(b, 0, 1, at);
    b[0] = (b[0] ?? 0) ^ 0x01;
    await fh2.write(b, 0, 1, at);
    await fh2.sync();
  } finally {
    await fh2.close();
  }
  const bad = await spawnGuest(dir, { guestId: 'g-bad', disks: [host.uri(disk)] });
  const exit = await bad.exited;
  assert.equal(exit.code, 4, bad.stderr);
  const line = bad.stdoutLines
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((j) => j.event === 'boot-failed');
  assert.ok(line, bad.stdoutLines.join('\n'));
  assert.equal(line.reason, 'log-invalid');
  const problem = line.problem as Record<string, unknown>;
  assert.equal(problem.kind, 'corrupt-record');
  assert.equal(problem.slot, slotOfSeq(f, 10));
  assert.match(
    bad.stderr,
    /guest log .* is invalid: slot 9 .*corrupt \(bad checksum\) where record 10 belongs/,
  );
});

test('quiesce holds writes with a stable disk image; thaw resumes; auto-thaw frees a forgotten guest', async () => {
  const disk = await newDisk(2 * MiB);
  const g = await boot(disk, {
    recordsPerSec: 400,
    payloadBytes: 64,
    flushEveryRecords: 1000,
    flushEveryMs: 5000,
  });
  await sleep(200);
  const q = await guestCall(g.to, 'POST', '/quiesce', { autoThawMs: 20_000 });
  assert.equal(q.status, 200);
  assert.equal(q.body.state, 'quiesced');
  assert.equal(q.body.alreadyQuiesced, false);
  assert.equal(q.body.lastDurableSeq, q.body.lastWrittenSeq, 'quiesce must flush every written record');
  const hash1 = await host.sha256(disk);
  const report = await host.validate(disk);
  assert.equal(report.valid, true);
  assert.equal(report.lastSeq, q.body.lastWrittenSeq);
  await sleep(500);
  const s = await state(g);
  assert.equal(s.state, 'quiesced');
  assert.equal(s.lastWrittenSeq, q.body.lastWrittenSeq);
  assert.equal(await host.sha256(disk), hash1, 'the disk image changed while the guest was quiesced');
  const again = await guestCall(g.to, 'POST', '/quiesce', {});
  assert.equal(again.body.alreadyQuiesced, true);

  const t = await guestCall(g.to, 'POST', '/thaw');
  assert.deepEqual(t.body, { state: 'running', thawed: true });
  await until(
    g,
    (v) => num(v.lastWrittenSeq) > num(q.body.lastWrittenSeq) + 20,
    'writes did not resume after thaw',
  );
  assert.notEqual(await host.sha256(disk), hash1);
  assert.equal((await guestCall(g.to, 'POST', '/thaw')).body.thawed, false);

  // Auto-thaw.
  const q2 = await guestCall(g.to, 'POST', '/quiesce', { autoThawMs: 300 });
  assert.equal(q2.body.state, 'quiesced');
  await sleep(100);
  assert.equal((await state(g)).lastWrittenSeq, q2.body.lastWrittenSeq);
  const s3 = await until(g, (v) => v.state === 'running', 'no auto-thaw');
  assert.ok(Date.now() >= num(q2.body.autoThawAtWallMs) - 5, 'thawed before its auto-thaw time');
  assert.equal(s3.autoThaws, 1);
  await until(g, (v) => num(v.lastWrittenSeq) > num(q2.body.lastWrittenSeq), 'no writes after auto-thaw');
  const bad = await guestCall(g.to, 'POST', '/quiesce', { autoThawMs: -1 });
  assert.equal(bad.status, 400);
  assert.equal((await guestCall(g.to, 'GET', '/nope')).status, 404);

  // SIGTERM is a graceful shutdown, also of a quiesced guest: everything written is durable.
  assert.equal((await guestCall(g.to, 'POST', '/quiesce', {})).body.state, 'quiesced');
  g.child.signalGroup('SIGTERM');
  assert.equal((await g.child.exited).code, 0);
  const stopped = g.child.stdoutLines
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((j) => j.event === 'stopped');
  const final = await host.validate(disk);
  assert.equal(final.valid, true);
  assert.equal(final.lastSeq, stopped?.lastDurableSeq);
});

test('a guest whose disk goes away exits non-zero with a disk-error event', async () => {
  const disk = await newDisk(1 * MiB);
  const g = await boot(disk, { recordsPerSec: 100 });
  await sleep(100);
  await host.removeDisk(disk);
  const exit = await g.child.exited;
  assert.equal(exit.code, 3, g.child.stderr);
  assert.ok(
    g.child.stdoutLines.some((l) => l.includes('"event":"disk-error"')),
    g.child.stdoutLines.join('\n'),
  );
});

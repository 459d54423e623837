/**
 * The contract every VM runtime driver passes (src/host/vm/vm-driver.ts): run it from a test file
 * against a real driver with real guests.
 *
 *   runVmDriverContract('process', async () => ({ driver, newSpec, reopen, cleanup }));
 *
 * The fixture gives a driver, a way to make a fresh VM spec (its own blank disks, a unique vmId, NICs
 * on addresses the guest can bind), a way to reopen the driver over the same state (a host agent
 * restart: every driver must keep its definitions across one), and a cleanup. The suite checks: define/remove idempotency and conflicts, errors for
 * unknown VMs and refused transitions, the full power cycle (start, quiesce holds writes, thaw,
 * graceful shutdown, restart continues the guest's log, power off), and that definitions and running
 * VMs survive a reopen.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isSecondsiteError, type ErrorCode } from '../domain/errors.js';
import type { VmDriver, VmGuestSettings, VmSpec } from '../host/vm/vm-driver.js';

export interface VmDriverFixture {
  readonly driver: VmDriver;
  /** A fresh spec: unique vmId, its own blank disk(s). */
  newSpec(guest?: VmGuestSettings): Promise<VmSpec>;
  /** Closes the driver and opens a new one over the same state (a host agent restart). */
  reopen(): Promise<VmDriver>;
  cleanup(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, pattern?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isSecondsiteError(e, code), `expected ${code}, got ${String(e)}`);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

export function runVmDriverContract(name: string, makeDriver: () => Promise<VmDriverFixture>): void {
  describe(`VM driver contract: ${name}`, () => {
    let fx: VmDriverFixture;
    let driver: VmDriver;
    before(async () => {
      fx = await makeDriver();
      driver = fx.driver;
    });
    after(async () => {
      for (const s of await driver.list().catch(() => []))
        await driver.powerOff(s.vmId).catch(() => undefined);
      await driver.close();
      await fx.cleanup();
    });

    test('define is idempotent, refuses a conflicting or invalid spec, and lists the VM off', async () => {
      const spec = await fx.newSpec();
      const a = await driver.define(spec);
      assert.equal(a.created, true);
      assert.equal(a.status.state, 'off');
      assert.equal(a.status.pid, null);
      const b = await driver.define(spec);
      assert.equal(b.created, false);
      await rejectsWith(
        driver.define({ ...spec, name: `${spec.name}-other` }),
        'SECONDSITE_ERR_ALREADY_EXISTS',
      );
      await rejectsWith(driver.define({ ...spec, vmId: '../evil' }), 'SECONDSITE_ERR_INVALID_ARGUMENT');
      await rejectsWith(
        driver.define({ ...spec, vmId: `${spec.vmId}x`, disks: [] }),
        'SECONDSITE_ERR_INVALID_ARGUMENT',
      );
      const listed = await driver.list();
      assert.ok(listed.some((s) => s.vmId === spec.vmId && s.state === 'off'));
      assert.deepEqual(await driver.remove(spec.vmId), { removed: true });
    });

    test('unknown VMs are NOT_FOUND; removing one is a no-op', async () => {
      const id = 'no-such-vm';
      await rejectsWith(driver.status(id), 'SECONDSITE_ERR_NOT_FOUND', /no-such-vm/);
      await rejectsWith(driver.start(id), 'SECONDSITE_ERR_NOT_FOUND');
      await rejectsWith(driver.shutdown(id, { timeoutMs: 100 }), 'SECONDSITE_ERR_NOT_FOUND');
      await rejectsWith(driver.powerOff(id), 'SECONDSITE_ERR_NOT_FOUND');
      await rejectsWith(driver.quiesce(id, { timeoutMs: 100 }), 'SECONDSITE_ERR_NOT_FOUND');
      await rejectsWith(driver.thaw(id), 'SECONDSITE_ERR_NOT_FOUND');
      assert.deepEqual(await driver.remove(id), { removed: false });
    });

    test('an off VM refuses quiesce and thaw; shutdown and power off of an off VM are no-ops', async () => {
      const spec = await fx.newSpec();
      await driver.define(spec);
      await rejectsWith(
        driver.quiesce(spec.vmId, { timeoutMs: 1000 }),
        'SECONDSITE_ERR_INVALID_STATE',
        /is off/,
      );
      await rejectsWith(driver.thaw(spec.vmId), 'SECONDSITE_ERR_INVALID_STATE', /is off/);
      const r = await driver.shutdown(spec.vmId, { timeoutMs: 1000 });
      assert.equal(r.stopped, true);
      assert.equal(r.alreadyOff, true);
      assert.equal((await driver.powerOff(spec.vmId)).state, 'off');
      await driver.remove(spec.vmId);
    });

    test('power cycle: start, quiesce holds writes, thaw, shutdown, restart continues, power off, remove', async () => {
      const spec = await fx.newSpec({ recordsPerSec: 200, flushEveryRecords: 10, flushEveryMs: 100 });
      await driver.define(spec);
      const started = await driver.start(spec.vmId);
      assert.equal(started.state, 'running');
      assert.ok(started.pid !== null && started.pid > 0);
      assert.equal(started.nics.length, spec.nics.length);
      for (const n of started.nics) assert.ok(n.port !== null && n.port > 0, JSON.stringify(n));
      const again = await driver.start(spec.vmId);
      assert.equal(again.pid, started.pid, 'start of a running VM must be a no-op');
      await rejectsWith(driver.remove(spec.vmId), 'SECONDSITE_ERR_INVALID_STATE', /running/);

      await sleep(300);
      const q = await driver.quiesce(spec.vmId, { timeoutMs: 5000, autoThawMs: 30_000 });
      assert.equal(q.alreadyQuiesced, false);
      assert.ok(q.guest);
      assert.equal(q.guest.lastDurableSeq, q.guest.lastWrittenSeq);
      assert.ok(q.autoThawAtWallMs > Date.now());
      const frozen = await driver.status(spec.vmId);
      assert.equal(frozen.state, 'quiesced');
      await sleep(300);
      const stillFrozen = await driver.status(spec.vmId);
      assert.equal(stillFrozen.guest?.lastWrittenSeq, q.guest.lastWrittenSeq, 'writes while quiesced');
      assert.equal((await driver.quiesce(spec.vmId, { timeoutMs: 5000 })).alreadyQuiesced, true);
      const t = await driver.thaw(spec.vmId);
      assert.equal(t.thawed, true);
      assert.equal(t.status.state, 'running');
      assert.equal((await driver.thaw(spec.vmId)).thawed, false);
      let moving = await driver.status(spec.vmId);
      for (let i = 0; i < 400 && (moving.guest?.lastWrittenSeq ?? 0) <= q.guest.lastWrittenSeq; i++) {
        await sleep(25);
        moving = await driver.status(spec.vmId);
      }
      assert.ok(
        (moving.guest?.lastWrittenSeq ?? 0) > q.guest.lastWrittenSeq,
        `no writes after thaw: ${JSON.stringify(moving)}`,
      );

      const sd = await driver.shutdown(spec.vmId, { timeoutMs: 15_000 });
      assert.equal(sd.stopped, true);
      assert.equal(sd.alreadyOff, false);
      assert.equal(sd.status.state, 'off');
      assert.equal(sd.status.pid, null);
      assert.equal(sd.status.lastExit?.code, 0);
      assert.equal(sd.status.lastExit?.reason, 'shutdown');
      const lastDurable = sd.guestAtShutdown?.lastDurableSeq ?? moving.guest?.lastDurableSeq ?? 0;
      assert.ok(lastDurable >= (moving.guest?.lastDurableSeq ?? 0));

      const re = await driver.start(spec.vmId);
      assert.equal(re.state, 'running');
      assert.ok(re.guest);
      assert.ok(re.guest.bootSeq >= lastDurable, `bootSeq ${re.guest.bootSeq} < durable ${lastDurable}`);
      if (sd.guestAtShutdown)
        assert.equal(
          re.guest.bootSeq,
          sd.guestAtShutdown.lastDurableSeq,
          'a graceful shutdown loses nothing',
        );
      assert.equal(re.guest.incarnation, 2);

      const off = await driver.powerOff(spec.vmId);
      assert.equal(off.state, 'off');
      assert.equal(off.pid, null);
      assert.equal(off.guest, null);
      assert.equal(off.lastExit?.reason, 'power-off');
      await rejectsWith(driver.quiesce(spec.vmId, { timeoutMs: 1000 }), 'SECONDSITE_ERR_INVALID_STATE');
      assert.deepEqual(await driver.remove(spec.vmId), { removed: true });
      assert.deepEqual(await driver.remove(spec.vmId), { removed: false });
      await rejectsWith(driver.status(spec.vmId), 'SECONDSITE_ERR_NOT_FOUND');
    });

    test('definitions and running VMs survive a reopen of the driver (host agent restart)', async () => {
      const running = await fx.newSpec();
      const idle = await fx.newSpec();
      await driver.define(running);
      await driver.define(idle);
      const s = await driver.start(running.vmId);
      driver = await fx.reopen();
      const listed = new Map((await driver.list()).map((v) => [v.vmId, v]));
      assert.equal(listed.get(idle.vmId)?.state, 'off');
      const adopted = listed.get(running.vmId);
      assert.equal(adopted?.state, 'running');
      assert.equal(adopted.pid, s.pid);
      assert.ok(adopted.guest, 'an adopted VM answers through its guest agent');
      const q = await driver.quiesce(running.vmId, { timeoutMs: 5000 });
      assert.ok(q.guest);
      await driver.thaw(running.vmId);
      const off = await driver.powerOff(running.vmId);
      assert.equal(off.state, 'off');
      await driver.remove(running.vmId);
      await driver.remove(idle.vmId);
    });
  });
}

// The `process` VM driver: the driver contract with real guest processes on a real NbdServer, then what
// only this driver can show: crashes seen from outside, a guest that refuses to boot, a frozen guest
// (SIGSTOP) for quiesce and shutdown timeouts, a guest that died while the host agent was away, and
// NICs in an isolated network namespace.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isSecondsiteError } from '../../src/domain/errors.js';
import { slotOfSeq, slotOffsetBytes } from '../../src/guest/app/guest-log.format.js';
import { ProcessVmDriver } from '../../src/host/vm/process-vm-driver.js';
import type { VmGuestSettings, VmSpec } from '../../src/host/vm/vm-driver.js';
import { deleteNetns, listNetns } from '../../src/host/vm/vm-netns.js';
import { runVmDriverContract } from '../../src/testing/vm-driver-contract.js';
import { DiskHost, MiB, removeDir, sleep, tempDir } from './vm-test-kit.js';

let specNo = 0;

async function makeSpec(
  host: DiskHost,
  guest: VmGuestSettings = {},
  extra: Partial<VmSpec> = {},
): Promise<VmSpec> {
  const n = ++specNo;
  const vmId = `vm-${process.pid}-${n}`;
  const nbdUri = await host.addDisk(`${vmId}-d0`, 2 * MiB);
  return {
    vmId,
    name: `test vm ${n}`,
    disks: [{ diskId: `${vmId}-d0`, nbdUri }],
    nics: [{ nicId: 'nic0', network: 'vmnet', ipv4: '127.0.0.1', port: 0 }],
    guest: { recordsPerSec: 100, payloadBytes: 128, ...guest },
    ...extra,
  };
}

runVmDriverContract('process', async () => {
  const dir = await tempDir('secondsite-vmc-');
  const host = await DiskHost.start(dir);
  const stateDir = join(dir, 'vms');
  let driver = await ProcessVmDriver.open({ stateDir, startTimeoutMs: 20_000 });
  return {
    get driver() {
      return driver;
    },
    newSpec: (guest) => makeSpec(host, guest),
    reopen: async () => {
      await driver.close();
      driver = await ProcessVmDriver.open({ stateDir });
      return driver;
    },
    cleanup: async () => {
      await host.close();
      await removeDir(dir);
    },
  };
});

describe('process driver specifics', () => {
  let dir: string;
  let host: DiskHost;
  let stateDir: string;
  let driver: ProcessVmDriver;
  before(async () => {
    dir = await tempDir('secondsite-vmp-');
    host = await DiskHost.start(dir);
    stateDir = join(dir, 'vms');
    driver = await ProcessVmDriver.open({ stateDir, startTimeoutMs: 20_000 });
  });
  after(async () => {
    for (const s of await driver.list().catch(() => [])) await driver.powerOff(s.vmId).catch(() => undefined);
    await driver.close();
    await host.close();
    await removeDir(dir);
  });

  test('a guest killed from outside is failed with its signal, never running', async () => {
    const spec = await makeSpec(host);
    await driver.define(spec);
    const s = await driver.start(spec.vmId);
    // the guest must have made a record durable before the kill, or there is no log to continue
    // (killed right after "ready", a loaded machine may not have written one yet)
    let durable = s.guest?.lastDurableSeq ?? 0;
    for (const until = Date.now() + 10_000; durable === 0 && Date.now() < until;) {
      await sleep(20);
      durable = (await driver.status(spec.vmId)).guest?.lastDurableSeq ?? 0;
    }
    assert.ok(durable > 0, 'the guest made no record durable within 10 s');
    process.kill(s.pid as number, 'SIGKILL');
    const deadline = Date.now() + 5000;
    let st = await driver.status(spec.vmId);
    while (st.state !== 'failed' && Date.now() < deadline) {
      assert.notEqual(st.state, 'off');
      await sleep(20);
      st = await driver.status(spec.vmId);
    }
    assert.equal(st.state, 'failed');
    assert.equal(st.pid, null);
    assert.equal(st.lastExit?.signal, 'SIGKILL');
    assert.equal(st.lastExit?.reason, 'crashed');
    // A failed VM can be started again and continues its log.
    const re = await driver.start(spec.vmId);
    assert.equal(re.state, 'running');
    assert.ok((re.guest?.bootSeq ?? 0) >= durable, `boot seq ${re.guest?.bootSeq} < ${durable} made durable`);
    await driver.powerOff(spec.vmId);
  });

  test('a guest whose log is corrupt fails to start with the guest’s own reason', async () => {
    const spec = await makeSpec(host, { recordsPerSec: 2000, flushEveryRecords: 100 });
    await driver.define(spec);
    await driver.start(spec.vmId);
    while (((await driver.status(spec.vmId)).guest?.lastWrittenSeq ?? 0) < 50) await sleep(20);
    assert.equal((await driver.shutdown(spec.vmId, { timeoutMs: 10_000 })).stopped, true);
    const disk = spec.disks[0]?.diskId as string;
    const f = (await host.validate(disk)).format;
    assert.ok(f);
    const fh = await open(host.imagePath(disk), 'r+');
    try {
      await fh.write(Buffer.from([0xff, 0xff]), 0, 2, slotOffsetBytes(f, slotOfSeq(f, 20)) + 100);
    } finally {
      await fh.close();
    }
    await assert.rejects(driver.start(spec.vmId), (e: unknown) => {
      assert.ok(isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'), String(e));
      assert.match(e.message, /did not boot: its guest exited \(code 4.*record 20 belongs/);
      return true;
    });
    const st = await driver.status(spec.vmId);
    assert.equal(st.state, 'failed');
    assert.equal(st.lastExit?.code, 4);
    assert.equal(st.lastExit?.reason, 'boot-failed');
    await driver.remove(spec.vmId);
  });

  test('a VM whose disk is not exported fails to start and says why', async () => {
    const spec = await makeSpec(host);
    const missing = { ...spec, disks: [{ diskId: 'gone', nbdUri: host.uri('no-such-export') }] };
    await driver.define(missing);
    await assert.rejects(driver.start(missing.vmId), (e: unknown) => {
      assert.ok(isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'), String(e));
      assert.match(e.message, /did not boot: its guest exited \(code 5.*no-such-export/);
      return true;
    });
    assert.equal((await driver.status(missing.vmId)).state, 'failed');
    await driver.remove(missing.vmId);
  });

  test('a guest that never becomes ready: start times out, powers it off and leaves the VM failed', async () => {
    const hang = join(dir, 'hanging-guest.mjs');
    await writeFile(hang, 'setInterval(() => {}, 1000);\n');
    const slow = await ProcessVmDriver.open({ stateDir: join(dir, 'vms-hang'), guestEntry: hang });
    try {
      const spec = await makeSpec(host);
      await slow.define(spec);
      const t0 = Date.now();
      await assert.rejects(slow.start(spec.vmId, { timeoutMs: 1500 }), (e: unknown) => {
        assert.ok(isSecondsiteError(e, 'SECONDSITE_ERR_TIMEOUT'), String(e));
        assert.match(e.message, /did not become ready within 1500 ms and was powered off/);
        return true;
      });
      assert.ok(Date.now() - t0 < 5000);
      const st = await slow.status(spec.vmId);
      assert.equal(st.state, 'failed');
      assert.equal(st.pid, null);
      assert.equal(st.lastExit?.reason, 'boot-failed');
      await slow.remove(spec.vmId);
    } finally {
      await slow.close();
    }
  });

  test('a frozen guest: quiesce times out with SECONDSITE_ERR_TIMEOUT, shutdown reports it did not stop', async () => {
    const spec = await makeSpec(host);
    await driver.define(spec);
    const s = await driver.start(spec.vmId);
    process.kill(s.pid as number, 'SIGSTOP');
    try {
      const t0 = Date.now();
      await assert.rejects(driver.quiesce(spec.vmId, { timeoutMs: 300 }), (e: unknown) => {
        assert.ok(isSecondsiteError(e, 'SECONDSITE_ERR_TIMEOUT'), String(e));
        assert.match(e.message, /did not confirm quiesce within 300 ms; take a crash-consistent point/);
        return true;
      });
      assert.ok(Date.now() - t0 < 2000);
      const sd = await driver.shutdown(spec.vmId, { timeoutMs: 400 });
      assert.equal(sd.stopped, false);
      assert.equal(sd.status.state, 'stopping');
      assert.equal(sd.status.pid, s.pid, 'shutdown must not kill');
      await assert.rejects(driver.start(spec.vmId), (e: unknown) =>
        isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'),
      );
    } finally {
      const off = await driver.powerOff(spec.vmId);
      assert.equal(off.state, 'off');
    }
  });

  test('after a host agent restart, a guest that died meanwhile is failed (lost), one that stopped cleanly is off', async () => {
    const a = await makeSpec(host);
    const b = await makeSpec(host);
    await driver.define(a);
    await driver.define(b);
    const sa = await driver.start(a.vmId);
    await driver.start(b.vmId);
    await driver.close();
    process.kill(sa.pid as number, 'SIGKILL');
    // b stops on its own terms (SIGTERM = graceful) while no agent watches.
    const sb = JSON.parse(await readText(join(stateDir, b.vmId, 'runtime.json'))) as { pid: number };
    process.kill(sb.pid, 'SIGTERM');
    for (let i = 0; i < 100 && (alive(sa.pid as number) || alive(sb.pid)); i++) await sleep(50);
    driver = await ProcessVmDriver.open({ stateDir });
    const va = await driver.status(a.vmId);
    assert.equal(va.state, 'failed');
    assert.equal(va.lastExit?.reason, 'lost');
    assert.equal(va.pid, null);
    const vb = await driver.status(b.vmId);
    assert.equal(vb.state, 'off', JSON.stringify(vb));
    assert.equal(vb.lastExit?.code, 0);
    await driver.remove(a.vmId);
    await driver.remove(b.vmId);
  });

  test('a damaged VM definition stops the driver from opening, naming the file', async () => {
    const other = join(dir, 'vms-damaged');
    await mkdir(join(other, 'vm-x'), { recursive: true });
    await writeFile(join(other, 'vm-x', 'vm.json'), '{"version":1,"spec":');
    await assert.rejects(ProcessVmDriver.open({ stateDir: other }), (e: unknown) => {
      assert.ok(isSecondsiteError(e, 'SECONDSITE_ERR_METADATA_CORRUPT'), String(e));
      assert.match(e.message, /vm-x\/vm\.json is not valid JSON/);
      return true;
    });
  });

  test('a NIC in a network namespace answers inside it and not on the host network', async () => {
    // test failover isolates networks with `ip netns`, which needs root: the tests run as root (CI)
    assert.equal(process.getuid?.(), 0, 'network namespaces need root: run the tests as root');
    const ns = `ss-vmtest-${process.pid}`;
    const ipv4 = '10.231.7.9';
    const spec = await makeSpec(
      host,
      {},
      {
        nics: [{ nicId: 'nic0', network: 'isolated', ipv4, port: 18080, netns: ns }],
      },
    );
    try {
      await driver.define(spec);
      const s = await driver.start(spec.vmId);
      assert.equal(s.state, 'running');
      assert.equal(s.nics[0]?.netns, ns);
      assert.equal(s.nics[0]?.port, 18080);
      assert.ok(s.guest, 'the guest agent socket works across the namespace');
      const inside = await execText('ip', [
        'netns',
        'exec',
        ns,
        process.execPath,
        '-e',
        `fetch('http://${ipv4}:18080/state').then(r=>r.json()).then(j=>console.log(JSON.stringify(j)))`,
      ]);
      const state = JSON.parse(inside) as { guestId: string; logValid: boolean };
      assert.equal(state.guestId, spec.vmId);
      assert.equal(state.logValid, true);
      assert.equal(
        await hostSeesGuest(ipv4, 18080, spec.vmId),
        false,
        'the isolated NIC answers on the host',
      );
      await driver.powerOff(spec.vmId);
      await driver.remove(spec.vmId);
    } finally {
      await driver.powerOff(spec.vmId).catch(() => undefined);
      await deleteNetns(ns);
    }
    assert.equal((await listNetns()).includes(ns), false);
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function readText(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

function execText(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 15_000, encoding: 'utf8' }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout),
    );
  });
}

/**
 * True if the guest answers GET /state at ipv4:port from the host's own network namespace. (A plain
 * TCP connect is not enough: this sandbox's network accepts connections to any address.)
 */
async function hostSeesGuest(ipv4: string, port: number, guestId: string): Promise<boolean> {
  try {
    const r = await fetch(`http://${ipv4}:${port}/state`, { signal: AbortSignal.timeout(1500) });
    const j = (await r.json()) as { guestId?: unknown };
    return j.guestId === guestId;
  } catch {
    return false;
  }
}

/**
 * The `process` VM runtime driver: a VM is a guest process (src/guest/app/guest-main.ts) whose disks
 * are NBD exports of the host agent, and whose guest agent is the guest's HTTP API on a Unix socket.
 *
 * Files, per VM, under `<stateDir>/<vmId>/` (vm.json and runtime.json through the Storage shim, replaced
 * atomically; the guest process's own files through node:fs, as the guest reads them from the disk):
 *   vm.json        the definition ({ version, spec }); written by define, deleted by remove
 *   runtime.json   { pid, instance, startedWallMs, ports, lastExit }: written when a guest is spawned,
 *                  again when it is ready and when it exits
 *   guest.json     the guest's config, rewritten at each start
 *   console.log    the guest's stdout and stderr for the current start (the previous one is kept as
 *                  console.prev.log); its JSON events explain exits
 *   agent.sock     the guest-agent socket
 *
 * Guests are spawned detached (own process group, stdio to console.log), so they outlive a host agent
 * that stops or crashes, as VMs outlive their management service. A restarted agent (`open()`) reads
 * runtime.json and adopts a guest only if its pid is alive AND its command line carries the instance
 * token of that start (so a reused pid is never mistaken for the VM); otherwise the VM is failed, or
 * off if its console shows a clean stop. Exit statuses of adopted guests are unknown (reported null).
 *
 * Exits: powerOff (SIGKILL to the guest's process group) -> off, reason 'power-off'; exit 0 -> off,
 * 'shutdown'; exit while starting -> failed, 'boot-failed'; any other exit -> failed, 'crashed'.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, renameSync } from 'node:fs';
import { mkdir, open as openFile, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isSecondsiteError, SecondsiteError } from '../../domain/errors.js';
import { readWholeFile, replaceFileAtomically } from '../disks/atomic-file.js';
import { silentLogger, type Logger } from '../../observability/logger.js';
import { NodeStorage } from '../storage/node-storage.js';
import type { Storage } from '../storage/storage.js';
import { GuestAgentClient, type GuestStateAnswer } from './guest-agent.client.js';
import type {
  GuestAppView,
  QuiesceReport,
  ShutdownReport,
  VmDriver,
  VmExit,
  VmPowerState,
  VmSpec,
  VmStatus,
} from './vm-driver.js';
import { addNetnsAddress, ensureNetns, netnsExecPrefix, removeNetnsAddress } from './vm-netns.js';
import { canonicalSpec, parseVmSpec, VM_ID_PATTERN } from './vm-spec.js';

/** The repository root: guests run `node --import tsx` from here. */
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const DEFAULT_GUEST_ENTRY = join(REPO_ROOT, 'src/guest/app/guest-main.ts');
const UNIX_SOCKET_PATH_MAX = 107;
const CONSOLE_TAIL_BYTES = 64 * 1024;
const ADOPTED_POLL_MS = 200;

export interface ProcessVmDriverOptions {
  /** Where VM definitions and runtime files live (created if missing). */
  readonly stateDir: string;
  readonly storage?: Storage;
  /** The guest program (default: this repository's guest-main.ts). */
  readonly guestEntry?: string;
  readonly log?: Logger;
  /** Default deadline of start(). Default 30 000. */
  readonly startTimeoutMs?: number;
  /** How long status() waits for a guest's own report before reporting without it. Default 1000. */
  readonly probeTimeoutMs?: number;
}

interface Runtime {
  pid: number | null;
  instance: string | null;
  startedWallMs: number | null;
  ports: Record<string, number>;
  lastExit: VmExit | null;
}

interface Entry {
  spec: VmSpec;
  state: VmPowerState;
  rt: Runtime;
  child: ChildProcess | null;
  poll: NodeJS.Timeout | null;
  exitWaiters: (() => void)[];
  powerOffRequested: boolean;
  starting: Promise<VmStatus> | null;
  guest: GuestAppView | null;
  persisting: Promise<void>;
}

const NO_RUNTIME: Runtime = { pid: null, instance: null, startedWallMs: null, ports: {}, lastExit: null };

export class ProcessVmDriver implements VmDriver {
  readonly kind = 'process';
  private readonly vms = new Map<string, Entry>();
  private readonly storage: Storage;
  private readonly guestEntry: string;
  private readonly log: Logger;
  private readonly startTimeoutMs: number;
  private readonly probeTimeoutMs: number;
  private closed = false;

  private constructor(private readonly options: ProcessVmDriverOptions) {
    this.storage = options.storage ?? new NodeStorage();
    this.guestEntry = options.guestEntry ?? DEFAULT_GUEST_ENTRY;
    this.log = options.log ?? silentLogger;
    this.startTimeoutMs = options.startTimeoutMs ?? 30_000;
    this.probeTimeoutMs = options.probeTimeoutMs ?? 1000;
  }

  /** Opens the state directory and finds the VMs defined there (adopting guests still running). */
  static async open(options: ProcessVmDriverOptions): Promise<ProcessVmDriver> {
    const d = new ProcessVmDriver(options);
    await d.storage.mkdir(options.stateDir);
    for (const vmId of await d.storage.list(options.stateDir)) {
      if (!VM_ID_PATTERN.test(vmId)) continue;
      const raw = await readWholeFile(d.storage, d.path(vmId, 'vm.json'));
      if (!raw) continue;
      const spec = parseVmSpec(parseJsonFile<{ spec: unknown }>(raw, d.path(vmId, 'vm.json')).spec);
      const rtRaw = await readWholeFile(d.storage, d.path(vmId, 'runtime.json'));
      const rt = rtRaw
        ? { ...NO_RUNTIME, ...parseJsonFile<Partial<Runtime>>(rtRaw, d.path(vmId, 'runtime.json')) }
        : { ...NO_RUNTIME };
      const e = d.newEntry(spec, rt);
      d.vms.set(vmId, e);
      await d.recover(e);
    }
    return d;
  }

  async define(raw: VmSpec): Promise<{ status: VmStatus; created: boolean }> {
    this.assertOpen();
    const spec = parseVmSpec(raw);
    const existing = this.vms.get(spec.vmId);
    if (existing) {
      if (canonicalSpec(existing.spec) === canonicalSpec(spec))
        return { status: await this.status(spec.vmId), created: false };
      throw new SecondsiteError(
        'SECONDSITE_ERR_ALREADY_EXISTS',
        `VM ${spec.vmId} is already defined with different settings; remove it first (it must be off) or use another id`,
        { vmId: spec.vmId },
      );
    }
    const agentSocket = this.path(spec.vmId, 'agent.sock');
    if (Buffer.byteLength(agentSocket) > UNIX_SOCKET_PATH_MAX)
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_ARGUMENT',
        `the guest-agent socket path ${agentSocket} is longer than ${UNIX_SOCKET_PATH_MAX} bytes; use a shorter state directory`,
      );
    await this.storage.mkdir(this.dir(spec.vmId));
    await this.writeJson(this.path(spec.vmId, 'vm.json'), { version: 1, spec });
    const e = this.newEntry(spec, { ...NO_RUNTIME });
    this.vms.set(spec.vmId, e);
    this.log.info('vm defined', { vmId: spec.vmId });
    return { status: this.view(e), created: true };
  }

  async start(vmId: string, options: { timeoutMs?: number } = {}): Promise<VmStatus> {
    const e = this.entry(vmId);
    if (e.starting) return e.starting;
    if (e.state === 'running' || e.state === 'quiesced') return this.status(vmId);
    if (e.state === 'stopping')
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `VM ${vmId} is stopping; wait until it is off, or power it off, then start it`,
        { vmId, state: e.state },
      );
    e.starting = this.boot(e, options.timeoutMs ?? this.startTimeoutMs).finally(() => {
      e.starting = null;
    });
    return e.starting;
  }

  async shutdown(vmId: string, options: { timeoutMs: number }): Promise<ShutdownReport> {
    const e = this.entry(vmId);
    const t0 = performance.now();
    let guestAtShutdown: GuestAppView | null = null;
    const report = (stopped: boolean, alreadyOff: boolean): ShutdownReport => ({
      stopped,
      alreadyOff,
      durationMs: Math.round(performance.now() - t0),
      status: this.view(e),
      guestAtShutdown,
    });
    if (!this.alive(e)) return report(true, true);
    if (e.state === 'starting')
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `VM ${vmId} is starting; wait for it to run, or power it off`,
        { vmId, state: e.state },
      );
    e.state = 'stopping';
    const deadline = t0 + options.timeoutMs;
    const exited = this.waitExit(e);
    const before = e.guest;
    try {
      const a = await this.agent(e).shutdown(Math.max(1, deadline - performance.now()));
      guestAtShutdown = {
        ...(before ?? emptyGuest()),
        state: 'stopped',
        lastWrittenSeq: a.lastDurableSeq,
        lastDurableSeq: a.lastDurableSeq,
      };
    } catch (err) {
      this.log.warn('guest did not take the shutdown request; sending SIGTERM', { vmId, err });
      this.signal(e, 'SIGTERM');
    }
    const left = deadline - performance.now();
    if (left > 0) await Promise.race([exited, sleep(left)]);
    if (!this.alive(e)) return report(true, false);
    this.log.warn('vm did not stop in time', { vmId, timeoutMs: options.timeoutMs });
    return report(false, false);
  }

  async powerOff(vmId: string): Promise<VmStatus> {
    const e = this.entry(vmId);
    if (!this.alive(e)) return this.view(e);
    e.powerOffRequested = true;
    const exited = this.waitExit(e);
    this.signal(e, 'SIGKILL');
    await exited;
    return this.view(e);
  }

  async status(vmId: string): Promise<VmStatus> {
    const e = this.entry(vmId);
    if (this.alive(e) && e.state !== 'starting') {
      try {
        this.noteGuest(e, await this.agent(e).state(this.probeTimeoutMs));
      } catch {
        e.guest = null;
      }
    }
    return this.view(e);
  }

  async list(): Promise<VmStatus[]> {
    const out: VmStatus[] = [];
    for (const vmId of [...this.vms.keys()].sort()) out.push(await this.status(vmId));
    return out;
  }

  async quiesce(vmId: string, options: { timeoutMs: number; autoThawMs?: number }): Promise<QuiesceReport> {
    const e = this.entry(vmId);
    this.assertRunning(e, 'quiesce');
    const agent = this.agent(e);
    try {
      const a = await agent.quiesce(options.timeoutMs, options.autoThawMs);
      e.state = 'quiesced';
      const guest: GuestAppView = {
        ...(e.guest ?? emptyGuest()),
        state: 'quiesced',
        lastWrittenSeq: a.lastWrittenSeq,
        lastDurableSeq: a.lastDurableSeq,
      };
      e.guest = guest;
      return { alreadyQuiesced: a.alreadyQuiesced, autoThawAtWallMs: a.autoThawAtWallMs, guest };
    } catch (err) {
      if (isSecondsiteError(err, 'SECONDSITE_ERR_TIMEOUT')) {
        // It may still freeze later: ask it to thaw so it is never left frozen by us.
        agent.thaw(Math.max(options.timeoutMs, 1000)).catch(() => undefined);
        throw new SecondsiteError(
          'SECONDSITE_ERR_TIMEOUT',
          `the guest of VM ${vmId} did not confirm quiesce within ${options.timeoutMs} ms; take a crash-consistent point instead (a thaw was sent, and the guest thaws itself after its auto-thaw time anyway)`,
          { vmId, timeoutMs: options.timeoutMs },
          { cause: err },
        );
      }
      throw err;
    }
  }

  async thaw(
    vmId: string,
    options: { timeoutMs?: number } = {},
  ): Promise<{ thawed: boolean; status: VmStatus }> {
    const e = this.entry(vmId);
    this.assertRunning(e, 'thaw');
    const a = await this.agent(e).thaw(options.timeoutMs ?? 10_000);
    if (e.state === 'quiesced') e.state = 'running';
    return { thawed: a.thawed, status: await this.status(vmId) };
  }

  async remove(vmId: string): Promise<{ removed: boolean }> {
    this.assertOpen();
    const e = this.vms.get(vmId);
    if (!e) return { removed: false };
    if (this.alive(e))
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `VM ${vmId} is ${e.state}; shut it down or power it off before removing it`,
        { vmId, state: e.state },
      );
    await e.persisting;
    for (const nic of e.spec.nics) if (nic.netns) await removeNetnsAddress(nic.netns, nic.ipv4);
    this.vms.delete(vmId);
    await this.storage.removeTree(this.dir(vmId));
    await this.storage.syncDir(this.options.stateDir);
    this.log.info('vm removed', { vmId });
    return { removed: true };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const e of this.vms.values()) {
      if (e.poll) clearInterval(e.poll);
      e.poll = null;
      e.child?.removeAllListeners('exit');
      await e.persisting;
    }
  }

  // --- internals -------------------------------------------------------------------------------

  private newEntry(spec: VmSpec, rt: Runtime): Entry {
    return {
      spec,
      state: rt.lastExit && rt.lastExit.reason !== 'power-off' && rt.lastExit.code !== 0 ? 'failed' : 'off',
      rt,
      child: null,
      poll: null,
      exitWaiters: [],
      powerOffRequested: false,
      starting: null,
      guest: null,
      persisting: Promise.resolve(),
    };
  }

  private dir(vmId: string): string {
    return join(this.options.stateDir, vmId);
  }

  private path(vmId: string, file: string): string {
    return join(this.dir(vmId), file);
  }

  private agent(e: Entry): GuestAgentClient {
    return new GuestAgentClient(this.path(e.spec.vmId, 'agent.sock'), `the guest of VM ${e.spec.vmId}`);
  }

  private assertOpen(): void {
    if (this.closed)
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_STATE', 'the VM driver is closed; open a new one');
  }

  private entry(vmId: string): Entry {
    this.assertOpen();
    const e = this.vms.get(vmId);
    if (!e)
      throw new SecondsiteError('SECONDSITE_ERR_NOT_FOUND', `no VM '${vmId}' on this host; define it first`, {
        vmId,
      });
    return e;
  }

  private assertRunning(e: Entry, op: string): void {
    if (e.state !== 'running' && e.state !== 'quiesced')
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `VM ${e.spec.vmId} is ${e.state}; ${op} needs a running VM (start it first)`,
        { vmId: e.spec.vmId, state: e.state },
      );
  }

  private alive(e: Entry): boolean {
    return e.rt.pid !== null;
  }

  private view(e: Entry): VmStatus {
    const live = this.alive(e);
    return {
      vmId: e.spec.vmId,
      name: e.spec.name,
      state: e.state,
      pid: e.rt.pid,
      diskIds: e.spec.disks.map((d) => d.diskId),
      nics: e.spec.nics.map((n) => ({
        nicId: n.nicId,
        network: n.network,
        ipv4: n.ipv4,
        port: live ? (e.rt.ports[n.nicId] ?? null) : null,
        netns: n.netns ?? null,
      })),
      startedWallMs: live ? e.rt.startedWallMs : null,
      lastExit: e.rt.lastExit,
      guest: live ? e.guest : null,
    };
  }

  private noteGuest(e: Entry, s: GuestStateAnswer): void {
    e.guest = pickGuest(s);
    if (e.state !== 'stopping' && e.state !== 'starting')
      e.state = s.state === 'quiesced' ? 'quiesced' : s.state === 'stopping' ? 'stopping' : 'running';
  }

  private persist(e: Entry): Promise<void> {
    const vmId = e.spec.vmId;
    const rt = { ...e.rt };
    e.persisting = e.persisting
      .catch(() => undefined)
      .then(() =>
        this.vms.get(vmId) === e ? this.writeJson(this.path(vmId, 'runtime.json'), rt) : undefined,
      );
    return e.persisting;
  }

  private async writeJson(path: string, value: unknown): Promise<void> {
    await replaceFileAtomically(this.storage, path, Buffer.from(`${JSON.stringify(value, null, 2)}\n`));
  }

  private async boot(e: Entry, timeoutMs: number): Promise<VmStatus> {
    const { vmId } = e.spec;
    const netns = e.spec.nics.find((n) => n.netns)?.netns ?? null;
    if (netns) {
      await ensureNetns(netns);
      for (const nic of e.spec.nics) await addNetnsAddress(netns, nic.ipv4);
    }
    const agentSocket = this.path(vmId, 'agent.sock');
    const guestConfig = {
      guestId: vmId,
      disks: e.spec.disks.map((d) => d.nbdUri),
      listen: e.spec.nics.map((n) => ({ host: n.ipv4, port: n.port })),
      agentSocket,
      ...e.spec.guest,
    };
    // guest.json, console.log and agent.sock are the guest process's own files: they live on the real
    // file system whatever Storage the driver's metadata goes through.
    await mkdir(this.dir(vmId), { recursive: true });
    const configPath = this.path(vmId, 'guest.json');
    await writeFile(`${configPath}.tmp`, `${JSON.stringify(guestConfig, null, 2)}\n`);
    await rename(`${configPath}.tmp`, configPath);
    const instance = randomBytes(8).toString('hex');
    const consolePath = this.path(vmId, 'console.log');
    rotateConsole(consolePath);
    const fd = openSync(consolePath, 'a');
    let child: ChildProcess;
    try {
      const argv = [
        process.execPath,
        '--import',
        'tsx',
        this.guestEntry,
        '--config',
        configPath,
        '--instance',
        instance,
      ];
      const full = netns ? [...netnsExecPrefix(netns), ...argv] : argv;
      child = spawn(full[0] as string, full.slice(1), {
        cwd: REPO_ROOT,
        detached: true,
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    if (child.pid === undefined) {
      const err = await new Promise<Error>((r) => child.once('error', r));
      throw new SecondsiteError(
        'SECONDSITE_ERR_INTERNAL',
        `could not start the guest of VM ${vmId}: ${err.message}`,
      );
    }
    child.unref();
    e.child = child;
    e.powerOffRequested = false;
    e.guest = null;
    e.state = 'starting';
    e.rt = { pid: child.pid, instance, startedWallMs: Date.now(), ports: {}, lastExit: e.rt.lastExit };
    child.once('exit', (code, signal) => void this.onExit(e, child, code, signal));
    await this.persist(e);
    this.log.info('vm starting', { vmId, pid: child.pid });

    const agent = this.agent(e);
    const deadline = performance.now() + timeoutMs;
    const exited = this.waitExit(e);
    for (;;) {
      if (e.child !== child) {
        const x = e.rt.lastExit;
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          `VM ${vmId} did not boot: its guest exited (code ${x?.code ?? 'none'}, signal ${x?.signal ?? 'none'})${x?.message ? `: ${x.message}` : ''}; see ${consolePath}`,
          { vmId, lastExit: x },
        );
      }
      try {
        const s = await agent.state(Math.max(1, Math.min(1000, deadline - performance.now())));
        e.rt = {
          ...e.rt,
          ports: Object.fromEntries(e.spec.nics.map((n, i) => [n.nicId, s.listen[i]?.port ?? n.port])),
        };
        e.state = 'running';
        this.noteGuest(e, s);
        await this.persist(e);
        this.log.info('vm running', { vmId, pid: child.pid, bootSeq: s.bootSeq });
        return this.view(e);
      } catch (err) {
        if (
          !isSecondsiteError(err, 'SECONDSITE_ERR_CONNECTION_LOST') &&
          !isSecondsiteError(err, 'SECONDSITE_ERR_TIMEOUT')
        )
          throw err;
      }
      if (performance.now() >= deadline) {
        e.powerOffRequested = true;
        this.signal(e, 'SIGKILL');
        await exited;
        e.state = 'failed';
        e.rt = { ...e.rt, lastExit: { ...(e.rt.lastExit as VmExit), reason: 'boot-failed' } };
        await this.persist(e);
        throw new SecondsiteError(
          'SECONDSITE_ERR_TIMEOUT',
          `VM ${vmId} did not become ready within ${timeoutMs} ms and was powered off; see ${consolePath}`,
          { vmId, timeoutMs },
        );
      }
      await Promise.race([exited, sleep(50)]);
    }
  }

  private waitExit(e: Entry): Promise<void> {
    if (!this.alive(e)) return Promise.resolve();
    return new Promise((resolve) => e.exitWaiters.push(resolve));
  }

  private signal(e: Entry, signal: NodeJS.Signals): void {
    const pid = e.rt.pid;
    if (pid === null) return;
    try {
      process.kill(-pid, signal);
    } catch {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
  }

  private async onExit(
    e: Entry,
    child: ChildProcess | null,
    code: number | null,
    signal: string | null,
  ): Promise<void> {
    if (child !== null && e.child !== child) return;
    const words = await this.lastWords(e);
    let reason: string;
    let state: VmPowerState;
    if (child === null && code === null && signal === null && words.event === 'stopped') code = 0;
    if (child === null && code === null && signal === null && words.event === 'disk-error') code = 3;
    if (e.powerOffRequested) {
      reason = 'power-off';
      state = 'off';
    } else if (e.state === 'starting') {
      reason = 'boot-failed';
      state = 'failed';
    } else if (code === 0) {
      reason = 'shutdown';
      state = 'off';
    } else {
      reason = child === null && code === null ? 'lost' : 'crashed';
      state = 'failed';
    }
    if (e.poll) clearInterval(e.poll);
    e.poll = null;
    e.child = null;
    e.state = state;
    e.guest = null;
    e.powerOffRequested = false;
    e.rt = {
      ...e.rt,
      pid: null,
      lastExit: { code, signal, atWallMs: Date.now(), reason, message: words.message },
    };
    this.log.info('vm exited', { vmId: e.spec.vmId, code, signal, reason });
    const waiters = e.exitWaiters;
    e.exitWaiters = [];
    for (const w of waiters) w();
    await this.persist(e).catch((err: unknown) =>
      this.log.error('cannot record the exit of a VM', { vmId: e.spec.vmId, err }),
    );
  }

  /** The guest's last event of this start (from console.log): why it stopped, in its own words. */
  private async lastWords(e: Entry): Promise<{ event: string | null; message: string | null }> {
    let text: string;
    try {
      const fh = await openFile(this.path(e.spec.vmId, 'console.log'), 'r');
      try {
        const size = (await fh.stat()).size;
        const len = Math.min(size, CONSOLE_TAIL_BYTES);
        const buf = Buffer.alloc(len);
        await fh.read(buf, 0, len, size - len);
        text = buf.toString('utf8');
      } finally {
        await fh.close();
      }
    } catch {
      return { event: null, message: null };
    }
    let last: { event: string | null; message: string | null } = { event: null, message: null };
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const j = JSON.parse(line) as { event?: unknown; message?: unknown; pid?: unknown };
        if (j.event === 'ready') last = { event: null, message: null };
        if (j.event === 'boot-failed' || j.event === 'disk-error' || j.event === 'stopped')
          last = { event: j.event, message: typeof j.message === 'string' ? j.message : null };
      } catch {
        // not one of ours
      }
    }
    return last;
  }

  /** After a host agent restart: adopt a guest that still runs, or record that it ended. */
  private async recover(e: Entry): Promise<void> {
    const { pid, instance } = e.rt;
    if (pid === null) return;
    if (instance !== null && (await isOurGuest(pid, instance))) {
      e.state = 'running';
      try {
        this.noteGuest(e, await this.agent(e).state(this.probeTimeoutMs));
      } catch {
        // status() will ask again
      }
      e.poll = setInterval(() => {
        void isOurGuest(pid, instance).then((ok) => {
          if (!ok && e.rt.pid === pid) void this.onExit(e, null, null, null);
        });
      }, ADOPTED_POLL_MS);
      e.poll.unref();
      this.log.info('vm adopted', { vmId: e.spec.vmId, pid });
      return;
    }
    e.state = 'running'; // so onExit classifies it as a crash, not a boot failure
    await this.onExit(e, null, null, null);
  }
}

function parseJsonFile<T>(raw: Buffer, path: string): T {
  try {
    return JSON.parse(raw.toString('utf8')) as T;
  } catch (e) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_METADATA_CORRUPT',
      `${path} is not valid JSON (${(e as Error).message}); restore it or remove the VM's directory and define the VM again`,
      { path },
    );
  }
}

/** Keeps the previous start's console as console.prev.log, so console.log holds only this start. */
function rotateConsole(path: string): void {
  try {
    renameSync(path, path.replace(/\.log$/, '.prev.log'));
  } catch {
    // no previous console
  }
}

async function isOurGuest(pid: number, instance: string): Promise<boolean> {
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.split('\0').includes(instance);
  } catch {
    return false;
  }
}

function pickGuest(s: {
  state: string;
  lastWrittenSeq: number;
  lastDurableSeq: number;
  bootSeq?: number;
  incarnation?: number;
}): GuestAppView {
  return {
    state: s.state,
    lastWrittenSeq: s.lastWrittenSeq,
    lastDurableSeq: s.lastDurableSeq,
    bootSeq: s.bootSeq ?? 0,
    incarnation: s.incarnation ?? 0,
  };
}

function emptyGuest(): GuestAppView {
  return { state: 'running', lastWrittenSeq: 0, lastDurableSeq: 0, bootSeq: 0, incarnation: 0 };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

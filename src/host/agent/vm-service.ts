/**
 * The host agent's VMs: definitions whose disks are this host's disks (or failover views), run by the
 * VM runtime driver (src/host/vm, docs/design/vm-runtime.md). The service turns control-API requests
 * into driver specs (disk ids -> NBD URIs of this agent's socket) and keeps the driver's rules: every
 * operation idempotent, refusals with the state and what to do.
 */
import { SecondsiteError, isSecondsiteError } from '../../domain/errors.js';
import type { CreateVmBody, VmTemplate } from '../../protocol/host-api/vms.schema.js';
import type { Logger } from '../../observability/logger.js';
import type { ShutdownReport, VmDriver, VmSpec, VmStatus } from '../vm/vm-driver.js';
import type { DiskService } from './disk-service.js';

/** The NBD URI of an export of this agent's socket. */
export function nbdUriOf(exportName: string, nbdSocket: string): string {
  return `nbd+unix:///${encodeURIComponent(exportName)}?socket=${nbdSocket}`;
}

/** How long a guest may take to confirm a quiesce before the point is taken crash-consistent. */
const QUIESCE_TIMEOUT_MS = 5_000;
/** A quiesced guest thaws itself after this long if the host never thaws it. */
const AUTO_THAW_MS = 30_000;

export class VmService {
  constructor(
    readonly driver: VmDriver,
    private readonly disks: DiskService,
    private readonly nbdSocket: string,
    private readonly log: Logger,
  ) {}

  /** Per VM, its definition without disks as JSON: what replication sends the replica (HELLO). */
  private readonly templates = new Map<string, string>();

  /** Learns the definitions of the VMs already defined (after a restart). */
  async init(): Promise<void> {
    for (const v of await this.driver.list()) {
      if (this.templates.has(v.vmId)) continue;
      const template: VmTemplate = {
        name: v.name,
        nics: v.nics.map((n) => ({ nicId: n.nicId, network: n.network, ipv4: n.ipv4, port: n.port ?? 0 })),
        guest: {},
      };
      this.templates.set(v.vmId, JSON.stringify(template));
    }
  }

  /** The VM's definition without its disks, as JSON ('' when there is no such VM here). */
  templateJson(vmId: string): string {
    return this.templates.get(vmId) ?? '';
  }

  /** Defines a VM over this host's disks (same definition again: no-op). */
  async create(body: CreateVmBody): Promise<{ status: VmStatus; created: boolean }> {
    for (const diskId of body.diskIds) await this.disks.get(diskId); // NOT_FOUND names the disk
    const template: VmTemplate = { name: body.name ?? body.vmId, nics: body.nics, guest: body.guest };
    this.templates.set(body.vmId, JSON.stringify(template));
    return this.define({
      vmId: body.vmId,
      name: body.name ?? body.vmId,
      disks: body.diskIds.map((diskId) => ({ diskId, nbdUri: nbdUriOf(diskId, this.nbdSocket) })),
      nics: body.nics,
      guest: body.guest,
    });
  }

  /** Defines a VM from a template over the given exports (failover: the disks are views). */
  defineFrom(
    vmId: string,
    template: VmTemplate,
    disks: ReadonlyArray<{ diskId: string; exportName: string }>,
    netns?: string,
  ): Promise<{ status: VmStatus; created: boolean }> {
    this.templates.set(vmId, JSON.stringify(template));
    return this.define({
      vmId,
      name: template.name ?? vmId,
      disks: disks.map((d) => ({ diskId: d.diskId, nbdUri: nbdUriOf(d.exportName, this.nbdSocket) })),
      nics: template.nics.map((n) => (netns ? { ...n, netns } : n)),
      guest: template.guest,
    });
  }

  private async define(spec: VmSpec): Promise<{ status: VmStatus; created: boolean }> {
    let r: { status: VmStatus; created: boolean };
    try {
      r = await this.driver.define(spec);
    } catch (e) {
      // an older definition of an off VM (e.g. the one this host ran before a failover) is replaced
      if (!isSecondsiteError(e, 'SECONDSITE_ERR_ALREADY_EXISTS') || (await this.isRunning(spec.vmId)))
        throw e;
      await this.driver.remove(spec.vmId);
      r = await this.driver.define(spec);
      this.log.info('vm definition replaced', { vmId: spec.vmId });
    }
    if (r.created) this.log.info('vm defined', { vmId: spec.vmId, disks: spec.disks.map((d) => d.diskId) });
    return r;
  }

  list(): Promise<VmStatus[]> {
    return this.driver.list();
  }

  status(vmId: string): Promise<VmStatus> {
    return this.driver.status(vmId);
  }

  /** Asked before a VM starts: a reason it must not (fenced by a failover), or null. */
  refuseStart: (vmId: string) => string | null = () => null;

  async start(vmId: string): Promise<VmStatus> {
    const refusal = this.refuseStart(vmId);
    if (refusal !== null) throw new SecondsiteError('SECONDSITE_ERR_INVALID_STATE', refusal, { vmId });
    const s = await this.driver.start(vmId);
    this.log.info('vm started', { vmId, pid: s.pid });
    return s;
  }

  async shutdown(vmId: string, timeoutMs: number): Promise<VmStatus> {
    return (await this.shutdownWithReport(vmId, timeoutMs)).status;
  }

  /** Like `shutdown`, with the guest's report at its final flush (what a planned failover keeps). */
  async shutdownWithReport(vmId: string, timeoutMs: number): Promise<ShutdownReport> {
    const r = await this.driver.shutdown(vmId, { timeoutMs });
    if (!r.stopped) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_TIMEOUT',
        `VM ${vmId} did not shut down within ${timeoutMs} ms; wait longer, or power it off`,
        { vmId, timeoutMs, state: r.status.state },
      );
    }
    return r;
  }

  /**
   * Freezes the guest's writes with its on-disk state consistent (for an app-consistent point) and
   * returns the thaw. Throws SECONDSITE_ERR_TIMEOUT when the guest does not confirm in time (it is
   * asked to thaw, and thaws itself after `autoThawMs` anyway).
   */
  async quiesce(vmId: string, timeoutMs = QUIESCE_TIMEOUT_MS): Promise<() => Promise<void>> {
    await this.driver.quiesce(vmId, { timeoutMs, autoThawMs: AUTO_THAW_MS });
    return async () => {
      await this.driver.thaw(vmId, { timeoutMs });
    };
  }

  powerOff(vmId: string): Promise<VmStatus> {
    return this.driver.powerOff(vmId);
  }

  /** Removes the definition (powering the VM off first when asked). False when there was none. */
  async remove(vmId: string, options: { powerOff?: boolean } = {}): Promise<boolean> {
    const known = (await this.driver.list()).some((v) => v.vmId === vmId);
    if (!known) return false;
    if (options.powerOff) await this.driver.powerOff(vmId);
    this.templates.delete(vmId);
    return (await this.driver.remove(vmId)).removed;
  }

  /** True when the VM is defined and its guest runs (or is starting, quiesced, stopping). */
  async isRunning(vmId: string): Promise<boolean> {
    const known = (await this.driver.list()).find((v) => v.vmId === vmId);
    return known !== undefined && known.state !== 'off' && known.state !== 'failed';
  }

  close(): Promise<void> {
    return this.driver.close();
  }
}

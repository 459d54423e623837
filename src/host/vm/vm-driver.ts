/**
 * The VM runtime driver interface: what the host agent needs from a hypervisor to run the VMs it
 * protects. One interface, several drivers (`process` now; `libvirt`, Hyper-V later); every driver
 * passes the contract suite in src/testing/vm-driver-contract.ts.
 *
 * Power states (closed set; a driver changes them only as below):
 *
 *   off ──start──> starting ──guest ready──> running ──quiesce──> quiesced ──thaw / auto-thaw──> running
 *    ^                │                        │  │                  │
 *    │                └──guest exits──> failed │  └──shutdown──> stopping ──guest exits 0──> off
 *    └──────────── powerOff (any state) ───────┘                     (timeout: stays stopping, reported)
 *   running / quiesced / stopping ──guest exits on its own──> failed (non-zero or signal) | off (exit 0)
 *
 * Rules every driver keeps:
 *   - a VM whose guest is gone is never reported running: `off` or `failed`, with `lastExit`;
 *   - definitions persist across a restart of the host agent (`list()` finds them again);
 *   - `define` and `remove` are idempotent; `start` of a running VM and `powerOff` of an off VM are no-ops;
 *   - `shutdown` never kills: when the guest does not stop in time it reports `stopped: false` and the
 *     caller decides (wait longer, or powerOff);
 *   - `quiesce` that the guest does not confirm in time throws SECONDSITE_ERR_TIMEOUT (the caller takes a
 *     crash-consistent point instead) and asks the guest to thaw, so no VM stays frozen;
 *   - refused transitions throw SECONDSITE_ERR_INVALID_STATE naming the state and what to do; unknown
 *     VMs throw SECONDSITE_ERR_NOT_FOUND.
 */

export type VmPowerState = 'off' | 'starting' | 'running' | 'stopping' | 'quiesced' | 'failed';

/** A disk as the guest reaches it. */
export interface VmDiskSpec {
  /** The host's disk id (an export of the host agent's NBD server). */
  readonly diskId: string;
  /** How the guest reaches it: `nbd+unix:///<export>?socket=<path>`. */
  readonly nbdUri: string;
}

export interface VmNicSpec {
  readonly nicId: string;
  /** VM network name (what network mapping maps). */
  readonly network: string;
  readonly ipv4: string;
  /** Port of the guest's service on this NIC; 0 = any free port (the status reports the real one). */
  readonly port: number;
  /**
   * Run the VM inside this Linux network namespace (an isolated network, e.g. for test failover). The
   * driver creates the namespace if missing and gives it an interface with `ipv4`. All NICs of a VM
   * must name the same namespace (or none).
   */
  readonly netns?: string;
}

/** Settings of the guest application (see src/guest/app/guest-config.ts for the defaults). */
export interface VmGuestSettings {
  readonly recordsPerSec?: number;
  readonly payloadBytes?: number;
  readonly flushEveryRecords?: number;
  readonly flushEveryMs?: number;
  readonly autoThawMs?: number;
}

export interface VmSpec {
  readonly vmId: string;
  readonly name: string;
  /** The first disk is the boot disk (it holds the guest's log). */
  readonly disks: readonly VmDiskSpec[];
  readonly nics: readonly VmNicSpec[];
  readonly guest: VmGuestSettings;
}

export interface VmExit {
  /** Exit status, or null when killed by a signal or unknown. */
  readonly code: number | null;
  readonly signal: string | null;
  readonly atWallMs: number;
  /** 'power-off', 'shutdown', 'crashed', 'boot-failed', 'lost' (ended while the agent was away). */
  readonly reason: string;
  /** The guest's own last words (a boot-failed or disk-error message), when known. */
  readonly message: string | null;
}

export interface VmNicStatus {
  readonly nicId: string;
  readonly network: string;
  readonly ipv4: string;
  /** The port the guest actually listens on (null while not running). */
  readonly port: number | null;
  readonly netns: string | null;
}

/** What the guest application reports about itself (null when it is not running or not answering). */
export interface GuestAppView {
  readonly state: string;
  readonly lastWrittenSeq: number;
  readonly lastDurableSeq: number;
  readonly bootSeq: number;
  readonly incarnation: number;
}

export interface VmStatus {
  readonly vmId: string;
  readonly name: string;
  readonly state: VmPowerState;
  readonly pid: number | null;
  /** The host disk ids of the VM's disks, boot disk first. */
  readonly diskIds: readonly string[];
  readonly nics: readonly VmNicStatus[];
  readonly startedWallMs: number | null;
  readonly lastExit: VmExit | null;
  readonly guest: GuestAppView | null;
}

export interface ShutdownReport {
  /** True when the VM is off (it stopped in time, or was already off or failed). */
  readonly stopped: boolean;
  readonly alreadyOff: boolean;
  readonly durationMs: number;
  readonly status: VmStatus;
  /**
   * The guest's report at its final flush (for the process driver: every record up to
   * `lastDurableSeq` is on disk), or null if the guest did not answer the shutdown request.
   */
  readonly guestAtShutdown: GuestAppView | null;
}

export interface QuiesceReport {
  readonly alreadyQuiesced: boolean;
  /** The guest thaws itself at this time if nobody thaws it. */
  readonly autoThawAtWallMs: number;
  /** Guest-reported state at the freeze (for the process driver: records durable up to this seq). */
  readonly guest: GuestAppView | null;
}

export interface VmDriver {
  /** Driver kind ('process', 'libvirt', ...). */
  readonly kind: string;
  /** Creates a VM definition (off). Same spec again: no-op; a different spec: SECONDSITE_ERR_ALREADY_EXISTS. */
  define(spec: VmSpec): Promise<{ status: VmStatus; created: boolean }>;
  /** Boots the VM and resolves when its guest is running; throws (and leaves the VM failed) if it cannot. */
  start(vmId: string, options?: { timeoutMs?: number }): Promise<VmStatus>;
  /** Asks the guest to shut down and waits up to timeoutMs; never kills (see ShutdownReport). */
  shutdown(vmId: string, options: { timeoutMs: number }): Promise<ShutdownReport>;
  /** Pulls the plug: the guest stops at once, without flushing. The VM is off afterwards. */
  powerOff(vmId: string): Promise<VmStatus>;
  status(vmId: string): Promise<VmStatus>;
  list(): Promise<VmStatus[]>;
  /** Freezes guest writes with the on-disk state consistent; SECONDSITE_ERR_TIMEOUT if not confirmed in time. */
  quiesce(vmId: string, options: { timeoutMs: number; autoThawMs?: number }): Promise<QuiesceReport>;
  /** Resumes guest writes. Returns false if the VM was not quiesced. */
  thaw(vmId: string, options?: { timeoutMs?: number }): Promise<{ thawed: boolean; status: VmStatus }>;
  /** Deletes the definition of an off or failed VM (its disks are the disk store's). False if unknown. */
  remove(vmId: string): Promise<{ removed: boolean }>;
  /** Releases the driver's resources; running VMs keep running. */
  close(): Promise<void>;
}

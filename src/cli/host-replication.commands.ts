/**
 * `secondsite host replication ...` (primary side: replicate a VM's disks to a replica host) and
 * `secondsite host replica ...` (replica side: the replicas this host keeps and their recovery points).
 */
import { resolve } from 'node:path';
import { SecondsiteError } from '../domain/errors.js';
import { formatBytes } from '../domain/units.js';
import type { ReplicationMeasure } from '../domain/replication/relationship-stats.js';
import type { RelationshipView } from '../host/agent/relationship-service.js';
import type { PointExport, ReplicaView } from '../host/agent/replica-service.js';
import { optionalString, parseCommandArgs, parseIntOption, parseSizeOption, requireString } from './args.js';
import type { Command, CommandIo } from './command.js';
import { STATE_DIR_HELP, clientFor, defaultStateDir } from './host-client.js';
import { STATE, simple, table } from './simple-command.js';

function age(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

function frequency(seconds: number): string {
  return seconds === 0 ? 'continuous' : seconds < 60 ? `${seconds} s` : `${seconds / 60} min`;
}

export function renderRelationships(views: RelationshipView[]): string {
  const rows = [
    ['REPLICATING', 'DISKS', 'TO', 'EVERY', 'STATE', 'LAST POINT', 'LAG', 'SENT', 'THROUGHPUT', 'HEALTH'],
  ];
  for (const v of views) {
    const { definition: d, report: r } = v;
    rows.push([
      d.relationshipId,
      d.diskIds.join(','),
      `${d.replica.hostId}:${d.replica.port}`,
      frequency(d.policy.copyFrequencySeconds),
      v.protectionState === 'replicating' || v.protectionState === 'initial-replication'
        ? `${v.protectionState} (${r.state})`
        : v.protectionState,
      r.lastPoint ? `#${r.lastPoint.sequence}` : '-',
      age(r.lagMs),
      formatBytes(r.bytes.wireSent),
      `${formatBytes(r.throughputBytesPerSec)}/s`,
      r.health.level + (r.health.reasons.length ? ` (${r.health.reasons.join('; ')})` : ''),
    ]);
  }
  return table(rows);
}

export function renderReplicas(views: ReplicaView[]): string {
  const rows = [
    ['REPLICA OF', 'LOCATION', 'EPOCH', 'DISKS', 'POINTS', 'LATEST', 'LAG', 'EXPORTED', 'UNDO FILES'],
  ];
  for (const v of views) {
    rows.push([
      v.relationshipId,
      v.storageLocation,
      String(v.epoch),
      v.disks.map((d) => `${d.diskId}(${formatBytes(d.sizeBytes)})`).join(','),
      String(v.points.length),
      v.latestPoint ? `#${v.latestPoint.sequence} ${new Date(v.latestPoint.cutWallMs).toISOString()}` : '-',
      age(v.lagMs),
      String(v.exports.length),
      String(v.undo.files) +
        (v.undo.backgroundErrors > 0
          ? ` (${v.undo.backgroundErrors} background error(s) since start: see the log)`
          : ''),
    ]);
  }
  return table(rows);
}

function renderPoints(v: ReplicaView): string {
  const rows = [['POINT', 'SEQ', 'CUT (UTC)', 'CONSISTENCY', 'EPOCH']];
  for (const p of v.points) {
    rows.push([
      p.pointId,
      String(p.sequence),
      new Date(p.cutWallMs).toISOString(),
      p.consistency,
      String(p.epoch),
    ]);
  }
  return table(rows);
}

function idArg(io: CommandIo, positionals: string[], what: string, help: string): string | null {
  const id = positionals[0];
  if (!id) {
    io.err(`error: ${what} is missing\n\n${help}`);
    return null;
  }
  return id;
}

const enableHelp = `usage: secondsite host replication enable VM_ID --disks D1[,D2...] --replica HOST_ID --address ADDR
                                         --port N [options]

Starts replicating the disks of a VM to a replica host. The first cycle is the initial replication
(sparse-aware, resumable); then every copy interval ships the changes since the previous cut as one
crash-consistent recovery point across all the VM's disks. Enabling again with the same settings
changes nothing.

  VM_ID                    the VM (also the relationship id unless --id is given)
  --disks D1,D2            this host's disks of the VM
  --replica HOST_ID        the replica host's id (its certificate must name it)
  --address ADDR           the replica host's address
  --port N                 the replica host's replication port
  --storage-location NAME  storage location on the replica (default 'default')
  --copy-frequency F       30s, 5m, 15m or continuous (default 5m)
  --retention-hours N      hourly recovery points to keep besides the latest (default 24, up to 720)
  --no-compression         send data uncompressed
  --bandwidth-limit RATE   e.g. 50M (bytes per second); default unlimited
  --id ID                  relationship id (default VM_ID)
  --app-consistent-frequency D  quiesce the VM for an app-consistent point every D (e.g. 1h, 4h, 30m;
                           default off); a guest that does not answer gives a crash-consistent point
  --initial MODE           'network' (default: copy every allocated block) or 'existing-copy' (the
                           replica holds a copy: 'replica import' or 'replica seed'; compare digests
                           and send only what differs)
  --epoch N                reverse replication: start at the failover's epoch, which the old primary's
                           seeded replica has ('secondsite host replica seed'); default 0
  --start-at TIME          scheduled initial replication: start at this time (ISO 8601, e.g.
                           2026-11-23T01:00:00Z); default now
  --resync MODE            when a resync change tracking needs (after an unclean stop) runs:
                           'automatic' (default), 'manual' (only after 'replication resync'), or
                           'window' (inside --resync-window)
  --resync-window HH:MM-HH:MM  daily UTC window for --resync window, e.g. 22:00-06:00
${STATE_DIR_HELP}`;

/** '30m', '4h', '90s' or a number of seconds; undefined = 0 (off). */
function parseDurationSeconds(text: string | undefined): number {
  if (text === undefined) return 0;
  const m = /^(\d+)(s|m|h)?$/.exec(text.trim());
  if (!m) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `--app-consistent-frequency '${text}' is not a duration; use e.g. 1h, 4h, 30m`,
    );
  }
  return Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
}

/** An ISO 8601 time with a zone; a bare local time is refused (a schedule must not depend on TZ). */
function parseStartAt(text: string): string {
  const ms = Date.parse(text);
  if (!/(Z|[+-]\d{2}:?\d{2})$/i.test(text.trim()) || Number.isNaN(ms)) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `--start-at '${text}' is not an ISO 8601 time with a zone; use e.g. 2026-11-23T01:00:00Z`,
    );
  }
  return new Date(ms).toISOString();
}

function parseFrequency(text: string | undefined): number {
  if (text === undefined) return 300;
  const map: Record<string, number> = {
    '30s': 30,
    '30': 30,
    '5m': 300,
    '300': 300,
    '15m': 900,
    '900': 900,
    continuous: 0,
    '0': 0,
  };
  const v = map[text];
  if (v === undefined) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `--copy-frequency must be 30s, 5m, 15m or continuous, not '${text}'`,
    );
  }
  return v;
}

const enable: Command = {
  path: ['replication', 'enable'],
  summary: "replicate a VM's disks to a replica host",
  help: enableHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      {
        ...STATE,
        disks: { type: 'string' },
        replica: { type: 'string' },
        address: { type: 'string' },
        port: { type: 'string' },
        'storage-location': { type: 'string' },
        'copy-frequency': { type: 'string' },
        'retention-hours': { type: 'string' },
        'no-compression': { type: 'boolean' },
        'bandwidth-limit': { type: 'string' },
        id: { type: 'string' },
        epoch: { type: 'string' },
        'app-consistent-frequency': { type: 'string' },
        initial: { type: 'string' },
        'start-at': { type: 'string' },
        resync: { type: 'string' },
        'resync-window': { type: 'string' },
      },
      enableHelp,
    );
    const vmId = idArg(io, p.positionals, 'VM_ID', enableHelp);
    if (!vmId) return 2;
    const limit = optionalString(p, 'bandwidth-limit');
    const startAt = optionalString(p, 'start-at');
    const resyncWindow = optionalString(p, 'resync-window');
    const body = {
      relationshipId: optionalString(p, 'id') ?? vmId,
      vmId,
      diskIds: requireString(p, 'disks', enableHelp)
        .split(',')
        .map((d) => d.trim())
        .filter(Boolean),
      replica: {
        hostId: requireString(p, 'replica', enableHelp),
        address: requireString(p, 'address', enableHelp),
        port: parseIntOption(requireString(p, 'port', enableHelp), 'port', 1, 65535, 0),
        storageLocation: optionalString(p, 'storage-location') ?? 'default',
      },
      policy: {
        copyFrequencySeconds: parseFrequency(optionalString(p, 'copy-frequency')),
        retentionHours: parseIntOption(optionalString(p, 'retention-hours'), 'retention-hours', 0, 720, 24),
        compression: p.values['no-compression'] !== true,
        ...(limit ? { bandwidthLimitBytesPerSec: parseSizeOption(limit, 'bandwidth-limit') } : {}),
        appConsistentFrequencySeconds: parseDurationSeconds(optionalString(p, 'app-consistent-frequency')),
        resyncMode: optionalString(p, 'resync') ?? (resyncWindow ? 'window' : 'automatic'),
        ...(resyncWindow ? { resyncWindow } : {}),
      },
      epoch: parseIntOption(optionalString(p, 'epoch'), 'epoch', 0, 2 ** 31, 0),
      initialReplication: optionalString(p, 'initial') ?? 'network',
      ...(startAt ? { initialReplicationStartAt: parseStartAt(startAt) } : {}),
    };
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const v = await client.post<RelationshipView>('/v1/relationships', body);
    io.out(
      p.json
        ? JSON.stringify(v)
        : `replicating ${v.definition.relationshipId} (${v.definition.diskIds.join(', ')}) to ${v.definition.replica.hostId} every ${frequency(v.definition.policy.copyFrequencySeconds)}${v.waitingFor ? `; ${v.waitingFor}` : ''}`,
    );
    return 0;
  },
};

const rel = (id: string | undefined): string => `/v1/relationships/${encodeURIComponent(id ?? '')}`;

const list = simple(
  ['replication', 'list'],
  'list the VMs this host replicates, with lag and health',
  `usage: secondsite host replication list [--state-dir DIR] [--output json]\n\nOne line per relationship: state, last recovery point, lag, bytes sent, throughput, health.`,
  (c) => c.get('/v1/relationships'),
  (r) => {
    const views = (r as { relationships: RelationshipView[] }).relationships;
    return views.length ? renderRelationships(views) : 'this host replicates nothing';
  },
  false,
);

const show = simple(
  ['replication', 'show'],
  "show one relationship's settings and full report",
  `usage: secondsite host replication show ID [--state-dir DIR] [--output json]`,
  (c, id) => c.get(rel(id)),
  (r) => JSON.stringify(r, null, 2),
  true,
);

const pause = simple(
  ['replication', 'pause'],
  'pause replication (changes keep being tracked)',
  `usage: secondsite host replication pause ID [--state-dir DIR] [--output json]\n\nStops shipping; the running cycle is abandoned and its changes stay tracked for the next one.`,
  (c, id) => c.post(`${rel(id)}/pause`),
  (_r, id) => `replication of ${id ?? ''} paused`,
  true,
);

const resumeHelp = `usage: secondsite host replication resume ID [--epoch N] [--state-dir DIR] [--output json]

Resumes a paused (or fenced) relationship. After the replica host cancelled a failover, pass the epoch
it printed (--epoch N): the replica kept its raised epoch and refuses frames of the older one.`;

const resume: Command = {
  path: ['replication', 'resume'],
  summary: 'resume paused replication (or continue at the epoch a cancelled failover left)',
  help: resumeHelp,
  async run(args, io) {
    const p = parseCommandArgs(args, { ...STATE, epoch: { type: 'string' } }, resumeHelp);
    const id = p.positionals[0];
    if (!id) return (io.err(`error: an id is missing\n\n${resumeHelp}`), 2);
    const epochText = optionalString(p, 'epoch');
    const body = epochText === undefined ? {} : { epoch: parseIntOption(epochText, 'epoch', 0, 2 ** 31, 0) };
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const r = await client.post<RelationshipView>(`${rel(id)}/resume`, body);
    io.out(p.json ? JSON.stringify(r) : `replication of ${id} resumed at epoch ${r.definition.epoch}`);
    return 0;
  },
};

const measure = simple(
  ['replication', 'measure'],
  'replication statistics (like Measure-VMReplication): cycle sizes, latency, errors, pending bytes',
  `usage: secondsite host replication measure ID [--state-dir DIR] [--output json]

Since the agent started: successful, failed and missed cycles, average and largest cycle (bytes of
changed data) and its latency (cut to recovery point), errors in a row, and the changed bytes tracked
on this host that no recovery point holds yet.`,
  (c, id) => c.get(`${rel(id)}/measure`),
  (r) => {
    const m = r as ReplicationMeasure;
    return [
      `replication of ${m.relationshipId}`,
      `  cycles        ${m.successfulCycles} ok, ${m.failedCycles} failed, ${m.missedCycles} missed`,
      `  size          average ${formatBytes(m.averageSizeBytes)}, max ${formatBytes(m.maxSizeBytes)}`,
      `  latency       average ${m.averageLatencyMs} ms, max ${m.maxLatencyMs} ms`,
      `  pending       ${formatBytes(m.pendingBytes)}`,
      `  errors        ${m.consecutivePermanentErrors} in a row${m.lastError ? `; last: ${m.lastError.code} ${m.lastError.message}` : ''}`,
    ].join('\n');
  },
  true,
);

const resync = simple(
  ['replication', 'resync'],
  'resync / online verify: compare every chunk with the replica, send only what differs',
  `usage: secondsite host replication resync ID [--state-dir DIR] [--output json]

The next cycle compares the SHA-256 of every chunk of every disk with the replica's latest point and
sends only the chunks that differ (it reads the disks on both hosts; the wire carries digests). It
finds and repairs silent divergence such as corruption on the replica. Replication then goes on as
before. An unclean stop of this host triggers the same resync by itself, at once or as the policy's
--resync mode says (manual: this command runs it; window: it waits for the window, or this command
runs it now).`,
  (c, id) => c.post(`${rel(id)}/resync`),
  (_r, id) => `resync of ${id ?? ''} requested: the next cycle compares every chunk`,
  true,
);

const disableHelp = `usage: secondsite host replication disable ID [--delete-replica] [--state-dir DIR] [--output json]

Stops replicating a VM and forgets the relationship on this host. The replica host keeps its
recovery points unless --delete-replica: then this host asks the replica host (over the hosts'
mutual TLS) to delete them too (refused there while a test failover or failover runs from them).
Refused while a planned failover is prepared (cancel or finish it first).`;

const disable: Command = {
  path: ['replication', 'disable'],
  summary: 'stop replicating a VM (--delete-replica: the replica host drops its points too)',
  help: disableHelp,
  async run(args, io) {
    const p = parseCommandArgs(args, { ...STATE, 'delete-replica': { type: 'boolean' } }, disableHelp);
    const id = p.positionals[0];
    if (!id) return (io.err(`error: an id is missing\n\n${disableHelp}`), 2);
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const r = await client.delete<{ disabled: boolean; replicaDeleted?: boolean }>(
      `${rel(id)}${p.values['delete-replica'] === true ? '?deleteReplica=true' : ''}`,
    );
    io.out(
      p.json
        ? JSON.stringify(r)
        : !r.disabled
          ? `${id} was not replicating`
          : `replication of ${id} disabled${r.replicaDeleted === undefined ? '' : r.replicaDeleted ? '; the replica host deleted its recovery points' : '; the replica host had no replica of it'}`,
    );
    return 0;
  },
};

const rep = (id: string | undefined): string => `/v1/replicas/${encodeURIComponent(id ?? '')}`;

const replicaList = simple(
  ['replica', 'list'],
  'list the replicas this host keeps',
  `usage: secondsite host replica list [--state-dir DIR] [--output json]`,
  (c) => c.get('/v1/replicas'),
  (r) => {
    const views = (r as { replicas: ReplicaView[] }).replicas;
    return views.length ? renderReplicas(views) : 'this host keeps no replicas';
  },
  false,
);

const replicaPoints = simple(
  ['replica', 'points'],
  "list a replica's retained recovery points",
  `usage: secondsite host replica points ID [--state-dir DIR] [--output json]`,
  (c, id) => c.get(rep(id)),
  (r) => renderPoints(r as ReplicaView),
  true,
);

const exportHelp = `usage: secondsite host replica export ID POINT [--state-dir DIR] [--output json]

Serves every disk of a retained recovery point read-only over this host's NBD socket (metadata only,
no copy). POINT is a point id or 'latest'. The point is kept (pinned) until it is unexported.`;

const replicaExport: Command = {
  path: ['replica', 'export'],
  summary: 'serve a recovery point read-only over NBD',
  help: exportHelp,
  async run(args, io) {
    const p = parseCommandArgs(args, STATE, exportHelp);
    const [id, point] = p.positionals;
    if (!id || !point) return (io.err(`error: ID and POINT are required\n\n${exportHelp}`), 2);
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const r = await client.post<PointExport>(`${rep(id)}/points/${encodeURIComponent(point)}/export`);
    io.out(
      p.json
        ? JSON.stringify(r)
        : r.disks.map((d) => `${d.diskId}  ${formatBytes(d.sizeBytes)}  ${d.nbdUri}`).join('\n'),
    );
    return 0;
  },
};

const importHelp = `usage: secondsite host replica import ID --from DIR --disks D1[,D2...] [--storage-location NAME] [--state-dir DIR] [--output json]

Offline initial replication, step 2, on the REPLICA host: the images 'secondsite host disk export'
wrote (DIR/<disk>.raw, carried here) become the replica of ID with one seed point. They are moved,
not copied: DIR must be on the same file system as the storage location. Then, on the primary:
'secondsite host replication enable ID ... --initial existing-copy'.`;

const replicaImport: Command = {
  path: ['replica', 'import'],
  summary: 'offline initial replication: make exported images the replica of a VM',
  help: importHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      {
        ...STATE,
        from: { type: 'string' },
        disks: { type: 'string' },
        'storage-location': { type: 'string' },
      },
      importHelp,
    );
    const id = p.positionals[0];
    if (!id) return (io.err(`error: ID is missing\n\n${importHelp}`), 2);
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const r = await client.post<ReplicaView>(`${rep(id)}/import`, {
      fromDir: resolve(requireString(p, 'from', importHelp)),
      diskIds: requireString(p, 'disks', importHelp).split(','),
      storageLocation: optionalString(p, 'storage-location') ?? 'default',
    });
    io.out(
      p.json ? JSON.stringify(r) : `replica of ${id} imported (seed point ${r.points[0]?.pointId ?? '-'})`,
    );
    return 0;
  },
};

const replicaDelete = simple(
  ['replica', 'delete'],
  'delete a replica and all its recovery points (disable replication on the primary first)',
  `usage: secondsite host replica delete ID [--state-dir DIR] [--output json]

Deletes this host's replica of ID with every recovery point ("disable replication and delete the
replica"). Refused while a point is exported or a test failover or failover of ID runs here. A primary
still replicating would start over with an initial replication: disable it there first.`,
  (c, id) => c.delete(rep(id)),
  (r, id) =>
    (r as { deleted: boolean }).deleted ? `replica of ${id ?? ''} deleted` : `no replica of ${id ?? ''} here`,
  true,
);

const seedHelp = `usage: secondsite host replica seed ID --disks D1[,D2...] --epoch N [--storage-location NAME] [--state-dir DIR] [--output json]

Reverse replication, on the OLD primary after a failover: this host's copies of the VM's disks become
the base of a replica of ID (moved, not copied; they leave this host's disk list), with one seed point.
Then, on the new primary, enable replication back to this host with '--epoch N' (the failover's epoch):
its first cycle compares digests against the seed and sends only the blocks that differ.
The VM must be off here, and this host's replication of ID must be fenced or prepared.`;

const replicaSeed: Command = {
  path: ['replica', 'seed'],
  summary: "reverse replication: turn this host's copies of a failed-over VM's disks into its replica",
  help: seedHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      {
        ...STATE,
        disks: { type: 'string' },
        epoch: { type: 'string' },
        'storage-location': { type: 'string' },
      },
      seedHelp,
    );
    const id = p.positionals[0];
    if (!id) return (io.err(`error: ID is missing\n\n${seedHelp}`), 2);
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const r = await client.post<ReplicaView>(`${rep(id)}/seed`, {
      diskIds: requireString(p, 'disks', seedHelp).split(','),
      epoch: parseIntOption(requireString(p, 'epoch', seedHelp), 'epoch', 0, 2 ** 31, 0),
      storageLocation: optionalString(p, 'storage-location') ?? 'default',
    });
    io.out(
      p.json
        ? JSON.stringify(r)
        : `this host now keeps the replica of ${id} (epoch ${r.epoch}), seeded from its own disks`,
    );
    return 0;
  },
};

const replicaUnexport: Command = {
  path: ['replica', 'unexport'],
  summary: 'stop serving a recovery point',
  help: `usage: secondsite host replica unexport ID POINT_ID [--state-dir DIR] [--output json]`,
  async run(args, io) {
    const p = parseCommandArgs(args, STATE, this.help);
    const [id, point] = p.positionals;
    if (!id || !point) return (io.err(`error: ID and POINT_ID are required\n\n${this.help}`), 2);
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const r = await client.delete<{ unexported: boolean }>(
      `${rep(id)}/points/${encodeURIComponent(point)}/export`,
    );
    io.out(
      p.json
        ? JSON.stringify(r)
        : r.unexported
          ? `point ${point} no longer served`
          : `point ${point} was not served`,
    );
    return 0;
  },
};

export const replicationCommands: Command[] = [enable, list, show, measure, pause, resume, resync, disable];
export const replicaCommands: Command[] = [
  replicaList,
  replicaPoints,
  replicaExport,
  replicaUnexport,
  replicaSeed,
  replicaImport,
  replicaDelete,
];

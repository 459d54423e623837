/**
 * `secondsite host failover ...`: host-level failover run on the replica host (docs/design/failover.md):
 * test failover and its cleanup, failover to a recovery point, change of point, commit, cancel.
 */
import type { PlannedFailoverResult } from '../host/failover/peer-failover.js';
import type { FailoverView } from '../host/failover/failover-service.js';
import { optionalString, parseCommandArgs, parseIntOption } from './args.js';
import type { Command } from './command.js';
import { STATE_DIR_HELP, clientFor, defaultStateDir } from './host-client.js';
import { STATE, simple, table } from './simple-command.js';

const rep = (id: string | undefined): string => `/v1/replicas/${encodeURIComponent(id ?? '')}`;

function describe(v: FailoverView): string {
  switch (v.state) {
    case 'test-failover':
      return `test failover of ${v.relationshipId}: test VM ${v.runningVmId ?? '-'} runs from point ${v.pointId ?? '-'} in an isolated network; clean up with 'secondsite host failover test-cleanup ${v.relationshipId}'`;
    case 'failover-pending-commit':
      return `${v.relationshipId} failed over to point ${v.pointId ?? '-'} (epoch ${v.epoch}); VM ${v.vmId} runs here. Commit with 'secondsite host failover commit ${v.relationshipId}', or change the point, or cancel`;
    case 'failed-over':
      return `${v.relationshipId} failed over and committed (epoch ${v.epoch}): VM ${v.vmId} runs on this host's own disks; reverse replication starts at epoch ${v.epoch}`;
    default:
      return `${v.relationshipId} is ${v.state}`;
  }
}

export function renderFailovers(views: FailoverView[]): string {
  const rows = [['REPLICA OF', 'STATE', 'POINT', 'EPOCH', 'VM']];
  for (const v of views)
    rows.push([v.relationshipId, v.state, v.pointId ?? '-', String(v.epoch), v.runningVmId ?? '-']);
  return table(rows);
}

function pointCommand(
  path: [string, string],
  summary: string,
  help: string,
  route: (id: string) => string,
  withForce: boolean,
): Command {
  return {
    path,
    summary,
    help,
    async run(args, io) {
      const options = withForce
        ? ({ ...STATE, point: { type: 'string' }, force: { type: 'boolean' } } as const)
        : ({ ...STATE, point: { type: 'string' } } as const);
      const p = parseCommandArgs(args, options, help);
      const id = p.positionals[0];
      if (!id) return (io.err(`error: the replica id is missing\n\n${help}`), 2);
      const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
      const body: Record<string, unknown> = { pointId: optionalString(p, 'point') ?? 'latest' };
      if (withForce) body['force'] = p.values['force'] === true;
      const r = await client.post<FailoverView>(route(id), body);
      io.out(p.json ? JSON.stringify(r) : describe(r));
      return 0;
    },
  };
}

const test = pointCommand(
  ['failover', 'test'],
  'start a test failover: a test VM from a point, isolated, while replication continues',
  `usage: secondsite host failover test ID [--point POINT] [--state-dir DIR] [--output json]

Boots a test VM (<vm>-test) from a retained recovery point (default: latest) on a copy-on-write view:
nothing is copied, the point is not changed, replication keeps running. Its NICs sit in an isolated
network namespace. Clean up with 'secondsite host failover test-cleanup ID'.

${STATE_DIR_HELP}`,
  (id) => `${rep(id)}/test-failover`,
  false,
);

const testCleanup = simple(
  ['failover', 'test-cleanup'],
  'remove a test failover: test VM, exports, view, network (nothing is left)',
  `usage: secondsite host failover test-cleanup ID [--state-dir DIR] [--output json]`,
  (c, id) => c.delete(`${rep(id)}/test-failover`),
  (r, id) =>
    (r as { cleaned: boolean }).cleaned
      ? `test failover of ${id ?? ''} cleaned up`
      : `no test failover of ${id ?? ''} was running; nothing left behind`,
  true,
);

const start = pointCommand(
  ['failover', 'start'],
  'fail over to a recovery point on this replica host (the primary may be gone)',
  `usage: secondsite host failover start ID [--point POINT] [--force] [--state-dir DIR] [--output json]

Unplanned failover: raises the relationship's epoch (the old primary is fenced from now on), then
starts the VM here from the point (default: latest) on a copy-on-write view. The failover is pending
commit: change the point ('change-point'), commit ('commit') or cancel ('cancel').

Refused while the primary VM still answers on its NIC address, unless --force (you accept two running
copies until the old one is stopped).`,
  (id) => `${rep(id)}/failover`,
  true,
);

const changePointHelp = `usage: secondsite host failover change-point ID POINT [--state-dir DIR] [--output json]

Restarts the recovery VM from another retained point. Writes made since the failover are discarded.`;

const changePoint: Command = {
  path: ['failover', 'change-point'],
  summary: 'restart the recovery VM from another recovery point (before commit)',
  help: changePointHelp,
  async run(args, io) {
    const p = parseCommandArgs(args, STATE, changePointHelp);
    const [id, pointId] = p.positionals;
    if (!id || !pointId) return (io.err(`error: ID and POINT are required\n\n${changePointHelp}`), 2);
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const r = await client.post<FailoverView>(`${rep(id)}/failover/change-point`, { pointId });
    io.out(p.json ? JSON.stringify(r) : describe(r));
    return 0;
  },
};

const commit = simple(
  ['failover', 'commit'],
  "commit a failover: the VM's disks become this host's own disks; other points are dropped",
  `usage: secondsite host failover commit ID [--state-dir DIR] [--output json]

Done in place while the VM runs (its I/O is held for the moment of the switch): costs the writes since
the failover plus, for an older point, the changes after it; never a copy of the disk.`,
  (c, id) => c.post(`${rep(id)}/failover/commit`),
  (r) => describe(r as FailoverView),
  true,
);

const cancel = simple(
  ['failover', 'cancel'],
  'cancel a failover: stop the recovery VM, back to receiving (the epoch stays raised)',
  `usage: secondsite host failover cancel ID [--state-dir DIR] [--output json]`,
  (c, id) => c.post(`${rep(id)}/failover/cancel`),
  (r) => {
    const v = r as FailoverView & { resumeEpoch: number };
    return `failover of ${v.relationshipId} cancelled; the primary resumes replication at epoch ${v.resumeEpoch}`;
  },
  true,
);

const show = simple(
  ['failover', 'show'],
  'show the failover state of a replica',
  `usage: secondsite host failover show ID [--state-dir DIR] [--output json]`,
  (c, id) => c.get(`${rep(id)}/failover`),
  (r) => describe(r as FailoverView),
  true,
);

const list = simple(
  ['failover', 'list'],
  'list test failovers and failovers on this host',
  `usage: secondsite host failover list [--state-dir DIR] [--output json]`,
  (c) => c.get('/v1/failovers'),
  (r) => {
    const v = (r as { failovers: FailoverView[] }).failovers;
    return v.length ? renderFailovers(v) : 'no failovers on this host';
  },
  false,
);

const prepareHelp = `usage: secondsite host failover prepare ID [--timeout-ms N] [--state-dir DIR] [--output json]

Planned failover, step 1, on the PRIMARY host: shuts the VM down gracefully (waits up to --timeout-ms,
default 30000; a VM that does not stop keeps running and nothing changes), ships its last changes and
waits for the replica to commit them. Prints the final point: fail over to it on the replica host
('secondsite host failover start ID --point <it>', then 'commit'): nothing is lost. The VM may not
start here again until you cancel ('secondsite host replication resume ID').`;

const prepare: Command = {
  path: ['failover', 'prepare'],
  summary: 'planned failover on the primary: shut down, ship the last changes (zero loss)',
  help: prepareHelp,
  async run(args, io) {
    const p = parseCommandArgs(args, { ...STATE, 'timeout-ms': { type: 'string' } }, prepareHelp);
    const id = p.positionals[0];
    if (!id) return (io.err(`error: the relationship id is missing\n\n${prepareHelp}`), 2);
    const timeoutMs = parseIntOption(optionalString(p, 'timeout-ms'), 'timeout-ms', 100, 600_000, 30_000);
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const r = await client.post<{ finalPoint: { pointId: string } }>(
      `/v1/relationships/${encodeURIComponent(id)}/prepare-failover`,
      { timeoutMs },
    );
    io.out(
      p.json
        ? JSON.stringify(r)
        : `${id} is shut down and its last changes are in point ${r.finalPoint.pointId}; on the replica host run: secondsite host failover start ${id} --point ${r.finalPoint.pointId}`,
    );
    return 0;
  },
};

const plannedHelp = `usage: secondsite host failover planned ID [--reverse] [--reverse-address ADDR]
                                      [--reverse-storage-location NAME] [--timeout-ms N]
                                      [--state-dir DIR] [--output json]

Planned failover in one command, run on the PRIMARY host (zero data loss):
  1. shuts the VM down gracefully (waits up to --timeout-ms, default 30000; a VM that does not stop
     keeps running and nothing changes) and ships its last changes as the final point;
  2. asks the replica host (over the hosts' mutual TLS, on its replication port) to fail over to
     exactly that point and commit: the VM runs there now;
  3. with --reverse: this host's disks become the replica of the new direction (no copy) and the new
     primary replicates back at once, sending only what differs.
If it is interrupted (a crash, a lost connection), run it again: it finishes what is left.

  --reverse                      replicate back right away (this host becomes the replica)
  --reverse-address ADDR         the address the new primary dials to reach this host (default:
                                 this host's replication listen address)
  --reverse-storage-location N   where this host keeps the reverse replica (default 'default')
${STATE_DIR_HELP}`;

const planned: Command = {
  path: ['failover', 'planned'],
  summary: 'planned failover in one command (on the primary): shut down, ship, fail over, commit[, reverse]',
  help: plannedHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      {
        ...STATE,
        'timeout-ms': { type: 'string' },
        reverse: { type: 'boolean' },
        'reverse-address': { type: 'string' },
        'reverse-storage-location': { type: 'string' },
      },
      plannedHelp,
    );
    const id = p.positionals[0];
    if (!id) return (io.err(`error: the relationship id is missing\n\n${plannedHelp}`), 2);
    const address = optionalString(p, 'reverse-address');
    const body = {
      timeoutMs: parseIntOption(optionalString(p, 'timeout-ms'), 'timeout-ms', 100, 600_000, 30_000),
      reverse: p.values['reverse'] === true,
      ...(address ? { reverseAddress: address } : {}),
      reverseStorageLocation: optionalString(p, 'reverse-storage-location') ?? 'default',
    };
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    if (!p.json) io.out(`${id}: shutting the VM down, shipping its last changes, failing over ...`);
    const r = await client.post<PlannedFailoverResult>(
      `/v1/relationships/${encodeURIComponent(id)}/planned-failover`,
      body,
    );
    io.out(
      p.json
        ? JSON.stringify(r)
        : [
            `${id} failed over to ${r.replica.vmId} on the replica host at point ${r.finalPoint.pointId} (epoch ${r.replica.epoch}); nothing was lost`,
            r.reverse
              ? `reverse replication runs: this host is now the replica (seeded from its own disks; only what differs is sent)`
              : `this host is fenced for ${id} (the VM may not start here); to replicate back later, run this command again with --reverse`,
          ].join('\n'),
    );
    return 0;
  },
};

export const failoverCommands: Command[] = [
  planned,
  prepare,
  test,
  testCleanup,
  start,
  changePoint,
  commit,
  cancel,
  show,
  list,
];

/**
 * `secondsite vault job list|show|wait|cancel` and `secondsite vault management-server refresh`
 * (docs/design/vault.md section 7). `wait` (and `refresh --wait`) polls the job: on a terminal it
 * redraws the tasks with progress bars in place, otherwise it prints a line per task change; it ends
 * with the job's outcome and exit status 0 (Succeeded), 1 (Failed) or 3 (Cancelled), so scripts can
 * `secondsite vault management-server refresh site-a --wait && ...`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { SecondsiteError } from '../domain/errors.js';
import type { VaultClient } from '../manager/provider/vault-client.js';
import type { JobDetail, JobView } from '../protocol/vault-api/jobs.schema.js';
import type { ManagementServerView } from '../protocol/vault-api/vault-api.schema.js';
import { optionalString, parseCommandArgs, parseIntOption, type Parsed } from './args.js';
import type { Command, CommandIo } from './command.js';
import { table } from './simple-command.js';
import { CONNECTION_HELP, CONNECTION_OPTIONS, vaultClientFrom } from './vault-connection.js';

type Options = Record<string, { type: 'string' | 'boolean' }>;

/** A command that returns its own exit status (the job commands' outcome decides it). */
function jobCommand(
  path: string[],
  summary: string,
  usage: string,
  options: Options,
  run: (client: VaultClient, p: Parsed, io: CommandIo) => Promise<number>,
): Command {
  const help = `${usage}\n\n${CONNECTION_HELP}\n  --output json     JSON for scripts`;
  return {
    path,
    summary,
    help,
    async run(args, io) {
      const p = parseCommandArgs(args, { ...CONNECTION_OPTIONS, ...options }, help);
      return run(await vaultClientFrom(p), p, io);
    },
  };
}

function jobIdArg(p: Parsed): string {
  const id = p.positionals[0];
  if (!id) throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'the job ID is missing');
  return id;
}

const getJob = (client: VaultClient, id: string): Promise<JobDetail> =>
  client.get<JobDetail>(`/v1/jobs/${encodeURIComponent(id)}`);

export function exitStatusOf(job: JobView): number {
  return job.state === 'Succeeded' ? 0 : job.state === 'Cancelled' ? 3 : 1;
}

function bar(percent: number, width = 20): string {
  const full = Math.round((percent / 100) * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}]`;
}

function renderDetail(job: JobDetail): string {
  const lines = [
    `${job.title}`,
    `job ${job.jobId} (${job.kind}) ${job.state} ${job.progressPercent}%, started by ${job.startedBy}`,
    ...job.tasks.map(
      (t) =>
        `  ${bar(t.progressPercent)} ${String(t.progressPercent).padStart(3)}%  ${t.state.padEnd(10)} ${t.title}${t.message ? `: ${t.message}` : ''}${t.runs > 1 ? ` (run ${t.runs})` : ''}`,
    ),
  ];
  if (job.error) lines.push(`error ${job.error.code}: ${job.error.message}`);
  return lines.join('\n');
}

function outcomeLine(job: JobView): string {
  if (job.state === 'Succeeded') return `job ${job.jobId} Succeeded: ${job.title}`;
  if (job.state === 'Cancelled') return `job ${job.jobId} Cancelled: ${job.title}`;
  return `job ${job.jobId} Failed: ${job.error ? `${job.error.code}: ${job.error.message}` : job.title}`;
}

/** Polls the job until it ends; shows progress; returns the exit status. */
export async function waitForJob(
  client: VaultClient,
  jobId: string,
  io: CommandIo,
  options: { json: boolean; timeoutSeconds: number; tty?: boolean },
): Promise<number> {
  const tty = options.tty ?? (process.stdout.isTTY && !options.json);
  const deadline = Date.now() + options.timeoutSeconds * 1000;
  let drawn = 0;
  const seen = new Map<string, string>();
  for (;;) {
    const job = await getJob(client, jobId);
    const ended = job.state === 'Succeeded' || job.state === 'Failed' || job.state === 'Cancelled';
    if (tty) {
      // one screen line per line (a wrapped line would break the redraw's count)
      const width = Math.max(20, (process.stdout.columns || 100) - 1);
      const text = renderDetail(job)
        .split('\n')
        .map((l) => (l.length > width ? `${l.slice(0, width - 1)}~` : l))
        .join('\n');
      // move up over the previous drawing and clear each line before writing the new one
      const clear = drawn > 0 ? `\x1b[${drawn}A` : '';
      io.out(
        clear +
          text
            .split('\n')
            .map((l) => `\x1b[2K${l}`)
            .join('\n'),
      );
      drawn = text.split('\n').length;
    } else if (!options.json) {
      for (const t of job.tasks) {
        const key = `${t.state} ${t.message}`;
        if (seen.get(t.name) !== key && t.state !== 'NotStarted') {
          io.out(`${t.state.padEnd(10)} ${t.title}${t.message ? `: ${t.message}` : ''}`);
          seen.set(t.name, key);
        }
      }
    }
    if (ended) {
      if (options.json) io.out(JSON.stringify(job));
      else io.out(outcomeLine(job));
      return exitStatusOf(job);
    }
    if (Date.now() > deadline) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_TIMEOUT',
        `job ${jobId} is still ${job.state} after ${options.timeoutSeconds} s; it keeps running in the vault ('secondsite vault job wait ${jobId}' again, or 'secondsite vault job cancel ${jobId}')`,
        { jobId, state: job.state },
      );
    }
    await sleep(tty ? 500 : 1000);
  }
}

const WAIT_OPTIONS: Options = { timeout: { type: 'string' } };
const timeoutOf = (p: Parsed): number =>
  parseIntOption(optionalString(p, 'timeout'), 'timeout', 1, 86_400, 3600);

const jobList = jobCommand(
  ['job', 'list'],
  'jobs, newest first',
  `usage: secondsite vault job list [--state NotStarted|InProgress|Succeeded|Failed|Cancelled] [--kind KIND] [--limit N]`,
  { state: { type: 'string' }, kind: { type: 'string' }, limit: { type: 'string' } },
  async (client, p, io) => {
    const q = new URLSearchParams();
    const state = optionalString(p, 'state');
    const kind = optionalString(p, 'kind');
    if (state) q.set('state', state);
    if (kind) q.set('kind', kind);
    q.set('limit', String(parseIntOption(optionalString(p, 'limit'), 'limit', 1, 1000, 50)));
    const { jobs } = await client.get<{ jobs: JobView[] }>(`/v1/jobs?${q.toString()}`);
    if (p.json) io.out(JSON.stringify(jobs));
    else if (jobs.length === 0) io.out('no jobs');
    else
      io.out(
        table([
          ['JOB', 'KIND', 'STATE', 'PROGRESS', 'TARGET', 'STARTED BY', 'CREATED'],
          ...jobs.map((j) => [
            j.jobId,
            j.kind,
            j.state,
            `${j.progressPercent}%`,
            `${j.target.type} ${j.target.name || j.target.id}`,
            j.startedBy,
            j.createdAt,
          ]),
        ]),
      );
    return 0;
  },
);

const jobShow = jobCommand(
  ['job', 'show'],
  'one job: its tasks, progress and events',
  'usage: secondsite vault job show ID',
  {},
  async (client, p, io) => {
    const job = await getJob(client, jobIdArg(p));
    if (p.json) io.out(JSON.stringify(job));
    else
      io.out(
        `${renderDetail(job)}\nevents:\n${job.events.map((e) => `  ${e.at}  ${e.task ?? '-'}  ${e.kind}  ${e.message}`).join('\n')}`,
      );
    return 0;
  },
);

const jobWait = jobCommand(
  ['job', 'wait'],
  'wait for a job to end, showing its progress (exit 0 Succeeded, 1 Failed, 3 Cancelled)',
  'usage: secondsite vault job wait ID [--timeout SECONDS]   (default 3600; the job keeps running after it)',
  WAIT_OPTIONS,
  (client, p, io) => waitForJob(client, jobIdArg(p), io, { json: p.json, timeoutSeconds: timeoutOf(p) }),
);

const jobCancel = jobCommand(
  ['job', 'cancel'],
  'cancel a job of a cancellable kind (it stops at its next step or wait)',
  'usage: secondsite vault job cancel ID',
  {},
  async (client, p, io) => {
    const id = jobIdArg(p);
    const job = await client.post<JobView>(`/v1/jobs/${encodeURIComponent(id)}/cancel`);
    io.out(p.json ? JSON.stringify(job) : `job ${id}: cancel requested (${job.state})`);
    return 0;
  },
);

const msRefresh = jobCommand(
  ['management-server', 'refresh'],
  "refresh a management server's inventory (a job)",
  `usage: secondsite vault management-server refresh NAME|ID [--wait] [--timeout SECONDS]

Starts an inventory-refresh job (or finds the one running): the vault asks the management server to
sync its inventory and waits until it holds the version the server answered. Prints the job id;
with --wait, follows the job to its end (exit 0 Succeeded, 1 Failed, 3 Cancelled).

  --timeout SECONDS   how long the vault waits for the management server (default 120)`,
  { wait: { type: 'boolean' }, timeout: { type: 'string' } },
  async (client, p, io) => {
    const nameOrId = p.positionals[0];
    if (!nameOrId)
      throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', 'the management server NAME is missing');
    const { managementServers } = await client.get<{ managementServers: ManagementServerView[] }>(
      '/v1/management-servers',
    );
    const ms = managementServers.find((m) => m.name === nameOrId || m.managementServerId === nameOrId);
    if (!ms) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_NOT_FOUND',
        `no management server ${nameOrId}; list them with 'secondsite vault management-server list'`,
      );
    }
    const timeoutSeconds = parseIntOption(optionalString(p, 'timeout'), 'timeout', 1, 3600, 120);
    const started = await client.post<{ jobId: string; created: boolean }>(
      `/v1/management-servers/${encodeURIComponent(ms.managementServerId)}/refresh`,
      { timeoutSeconds },
    );
    if (p.values['wait'] === true) {
      if (!p.json) io.out(`job ${started.jobId}${started.created ? '' : ' (already running)'}`);
      return waitForJob(client, started.jobId, io, { json: p.json, timeoutSeconds: timeoutSeconds * 2 + 60 });
    }
    io.out(
      p.json
        ? JSON.stringify(started)
        : `job ${started.jobId}${started.created ? ' started' : ' already running'}; follow it with 'secondsite vault job wait ${started.jobId}'`,
    );
    return 0;
  },
);

export const jobCommands: readonly Command[] = [jobList, jobShow, jobWait, jobCancel, msRefresh];

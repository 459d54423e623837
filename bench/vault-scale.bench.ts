/**
 * `vault-scale`: the vault with 10,000 replicated items and 100 management servers (issue 4). A real
 * `secondsite vault serve` (its own embedded PostgreSQL in the scratch folder); 100 management servers
 * registered through the API (real registration keys and CSRs); one synthetic inventory each, pushed
 * through the real route (~100 VMs, 15 hosts, 2 clouds, 2 VM networks: fabric-bench in
 * lib/vault-scale-fabric.ts); 100 cloud pairings and a policy through the API. The 10,000 items are
 * INSERTed straight into the vault's database (what the enable path writes, with the placement the
 * enable job would store and state Protected), because enabling needs real hosts; then every server
 * reports its replication status through the real route (24 points per item).
 *
 * Measured, while the 100 servers heartbeat every 10 s and report status every 5-10 s (as the
 * manager does; new TLS connection per request with the provider certificate, as VaultClient does):
 * list pages (limit 100 and 1000, random pages by cursor; limit 100 filtered by management server),
 * item reads (as the API client of a portal would, over a kept-alive connection; and a sample over a new
 * connection per request, as the CLI does), status ingest time per server, vault and PostgreSQL RSS;
 * then, separately, the sustained heartbeat rate with 32 concurrent senders. Targets are absolute
 * (the issue's): list/read p99 < 100 ms, vault memory < 500 MB. There is no peer program.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { format, resolveConfig } from 'prettier';
import {
  providerClient,
  registerProvider,
  type ProviderIdentity,
} from '../src/manager/provider/provider-registration.js';
import { VaultClient } from '../src/manager/provider/vault-client.js';
import { replicationStatusSchema } from '../src/protocol/vault-api/replication-status.schema.js';
import { readyLine, sleep, startProcess, type RunningProcess } from './lib/processes.js';
import { type BenchOptions, type Suite, type SuiteResult, checkValue, measurement } from './lib/suite.js';
import {
  STORAGE_LOCATION,
  partnerOf,
  replicaHost,
  scaleInventory,
  scaleStatus,
  vmHost,
  vmId,
} from './lib/vault-scale-fabric.js';

const SERVERS = 100;
const VMS_PER_SERVER = 100;
const POINTS_PER_ITEM = 24;
const HEARTBEAT_INTERVAL_MS = 10_000;
const HAMMER_CONCURRENCY = 32;
const MB = 1024 * 1024;

function percentile(values: readonly number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

function stats(values: readonly number[]): Record<string, number> {
  const r = (x: number): number => Math.round(x * 100) / 100;
  return {
    n: values.length,
    p50: r(percentile(values, 50)),
    p99: r(percentile(values, 99)),
    max: r(Math.max(...values)),
  };
}

/** Runs `fn` over `items` with at most `limit` at a time. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** VmRSS, RssAnon and RssShmem of a process, in bytes (0 when it is gone). */
async function memoryOf(pid: number): Promise<{ rss: number; anon: number; shmem: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = (key: string): number =>
    Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), shmem: kb('RssShmem') };
}

/** CPU time (user + system) a process used so far, in seconds. */
async function cpuSecondsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // after the comm: state(0) ppid(1) ... utime(11) stime(12), in clock ticks (100 per second here)
  return (Number(f[11] ?? 0) + Number(f[12] ?? 0)) / 100;
}

/** CPU seconds of PostgreSQL: the postmaster, its exited children (reaped) and its live ones. */
async function postgresCpuSeconds(postmasterPid: number): Promise<number> {
  const stat = await readFile(`/proc/${postmasterPid}/stat`, 'utf8').catch(() => '');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  let total = (Number(f[13] ?? 0) + Number(f[14] ?? 0)) / 100; // cutime + cstime
  for (const pid of await postgresPids(postmasterPid)) total += await cpuSecondsOf(pid);
  return total;
}

/** The postmaster and its children (backends, checkpointer ...). */
async function postgresPids(postmasterPid: number): Promise<number[]> {
  const pids = [postmasterPid];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === postmasterPid) pids.push(Number(name));
  }
  return pids;
}

/**
 * PostgreSQL's memory: private memory (RssAnon) summed over its processes, plus the largest shared
 * part any one of them maps (shared buffers are counted once, not once per backend).
 */
async function postgresMemory(postmasterPid: number): Promise<number> {
  let anon = 0;
  let shmem = 0;
  for (const pid of await postgresPids(postmasterPid)) {
    const m = await memoryOf(pid);
    anon += m.anon;
    shmem = Math.max(shmem, m.shmem);
  }
  return anon + shmem;
}

/** A kept-alive HTTPS client with the admin token: what a portal or script reading the API uses. */
function keepAliveClient(url: string, caCertPem: string, token: string) {
  const base = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: caCertPem });
  return {
    async get(path: string, retried = false): Promise<{ ms: number; body: unknown }> {
      const started = performance.now();
      let reused = false;
      const text = await new Promise<string>((resolve, reject) => {
        const req = request(
          {
            host: base.hostname,
            port: base.port,
            path,
            method: 'GET',
            agent,
            headers: { authorization: `Bearer ${token}` },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const body = Buffer.concat(chunks).toString('utf8');
              if ((res.statusCode ?? 0) >= 400) reject(new Error(`GET ${path}: ${res.statusCode} ${body}`));
              else resolve(body);
            });
            res.on('error', reject);
          },
        );
        req.on('error', (e) => {
          reused = req.reusedSocket;
          reject(e);
        });
        req.end();
      }).catch((e: unknown) => {
        // the server closed the idle kept-alive socket as we reused it (Node's documented race): once more
        if (reused && !retried) return null;
        throw e;
      });
      if (text === null) return this.get(path, true);
      const body = JSON.parse(text) as unknown;
      return { ms: performance.now() - started, body };
    },
    close(): void {
      agent.destroy();
    },
  };
}

interface Site {
  readonly index: number;
  readonly id: string;
  readonly client: VaultClient;
}

/** Background load: every server heartbeats every 10 s and reports status every 5-10 s, staggered. */
function startProviderLoad(
  sites: readonly Site[],
  ingestMs: number[],
  errors: string[],
): () => Promise<void> {
  let running = true;
  const loops: Promise<void>[] = [];
  for (const s of sites) {
    loops.push(
      (async () => {
        await sleep(Math.random() * HEARTBEAT_INTERVAL_MS);
        while (running) {
          const t0 = performance.now();
          await s.client
            .post(`/v1/management-servers/${s.id}/heartbeat`, {
              inventoryVersion: 1,
              providerVersion: 'bench',
            })
            .catch((e: unknown) => errors.push(`heartbeat: ${String(e)}`));
          await sleep(Math.max(0, HEARTBEAT_INTERVAL_MS - (performance.now() - t0)));
        }
      })(),
      (async () => {
        await sleep(Math.random() * 10_000);
        while (running) {
          const t0 = performance.now();
          const status = scaleStatus(s.index, SERVERS, VMS_PER_SERVER, POINTS_PER_ITEM, Date.now());
          await s.client
            .call('PUT', `/v1/management-servers/${s.id}/replication-status`, status)
            .then(() => ingestMs.push(performance.now() - t0))
            .catch((e: unknown) => errors.push(`status: ${String(e)}`));
          await sleep(Math.max(0, 5_000 + Math.random() * 5_000 - (performance.now() - t0)));
        }
      })(),
    );
  }
  return async () => {
    running = false;
    await Promise.all(loops);
  };
}

async function startVault(o: BenchOptions): Promise<{
  proc: RunningProcess;
  url: string;
  dataDir: string;
  adminToken: string;
  caCertPem: string;
}> {
  const dataDir = join(o.scratchDir, 'vault');
  // the embedded PostgreSQL runs as its own user when we are root: it must traverse the scratch folders
  await chmod(dirname(o.scratchDir), 0o711);
  await chmod(o.scratchDir, 0o711);
  const env = { ...process.env };
  delete env['DATABASE_URL']; // its own embedded PostgreSQL
  const proc = startProcess(
    'vault',
    process.execPath,
    [
      join(o.repoRoot, 'bin/secondsite.mjs'),
      'vault',
      'serve',
      '--data-dir',
      dataDir,
      '--listen',
      '127.0.0.1:0',
      '--heartbeat-interval',
      String(HEARTBEAT_INTERVAL_MS / 1000),
      '--log-level',
      'warn',
    ],
    { env, pipeStdout: true, logPath: join(o.scratchDir, 'vault.log') },
  );
  const ready = JSON.parse(await readyLine(proc, 120_000)) as { url: string };
  return {
    proc,
    url: ready.url,
    dataDir,
    adminToken: (await readFile(join(dataDir, 'admin.token'), 'utf8')).trim(),
    caCertPem: await readFile(join(dataDir, 'ca.crt'), 'utf8'),
  };
}

/** The embedded PostgreSQL of the vault: its postmaster pid and a URL of the vault's database. */
async function vaultDatabase(dataDir: string): Promise<{ pid: number; url: string }> {
  const pgDir = join(dataDir, 'postgres');
  const lines = (await readFile(join(pgDir, 'cluster', 'postmaster.pid'), 'utf8')).split('\n');
  const password = (await readFile(join(pgDir, 'superuser.password'), 'utf8')).trim();
  return {
    pid: Number(lines[0]),
    url: `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${Number(lines[3])}/secondsite`,
  };
}

export const vaultScaleSuite: Suite = {
  name: 'vault-scale',
  title: 'vault with 10,000 replicated items and 100 management servers (issue 4)',
  async run(o: BenchOptions): Promise<SuiteResult> {
    const quick = o.runtimeSeconds < 8;
    const loadSeconds = quick ? 20 : 60;
    const notes: string[] = [];
    const vault = await startVault(o);
    const db = await vaultDatabase(vault.dataDir);
    const sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
    const admin = new VaultClient({ url: vault.url, caCertPem: vault.caCertPem, token: vault.adminToken });
    const reader = keepAliveClient(vault.url, vault.caCertPem, vault.adminToken);
    let stopLoad: (() => Promise<void>) | null = null;
    try {
      const memory = async (): Promise<{ vaultMB: number; postgresMB: number }> => ({
        vaultMB: (await memoryOf(vault.proc.pid)).rss / MB,
        postgresMB: (await postgresMemory(db.pid)) / MB,
      });
      const idle = await memory();
      o.log(
        `  vault up at ${vault.url} (vault RSS ${idle.vaultMB.toFixed(0)} MB); registering ${SERVERS} servers`,
      );

      // 1. registration: a key is single use and only the newest key works, so one at a time
      let t0 = performance.now();
      const sites: Site[] = [];
      for (let i = 0; i < SERVERS; i++) {
        const key = await admin.post<object>('/v1/registration-keys', {});
        const dir = join(o.scratchDir, `ms-${i}`);
        await mkdir(dir, { recursive: true });
        const keyFile = join(dir, 'vault.key');
        await writeFile(keyFile, JSON.stringify(key), { mode: 0o600 });
        const identity: ProviderIdentity = await registerProvider({
          dataDir: dir,
          keyFile,
          managementServerName: `ms-${i}`,
          nodeName: 'node-1',
        });
        sites.push({
          index: i,
          id: identity.registration.managementServerId,
          client: providerClient(identity),
        });
      }
      const registerS = (performance.now() - t0) / 1000;

      // 2. inventories through the real route, 8 at a time
      t0 = performance.now();
      const inventoryMs = await pool(sites, 8, async (s) => {
        const t = performance.now();
        await s.client.call(
          'PUT',
          `/v1/management-servers/${s.id}/inventory`,
          scaleInventory(s.index, VMS_PER_SERVER, 1),
        );
        return performance.now() - t;
      });
      const inventoryS = (performance.now() - t0) / 1000;

      // 3. a policy and 100 pairings through the API
      await admin.post('/v1/policies', { name: 'bench', copyFrequencySeconds: 300 });
      const pairingOf = new Map<number, string>();
      await pool(sites, 8, async (s) => {
        const partner = sites[partnerOf(s.index, SERVERS)] as Site;
        const p = await admin.post<{ pairingId: string }>('/v1/cloud-pairings', {
          primaryManagementServerId: s.id,
          primaryCloudId: 'cloud-prod',
          recoveryManagementServerId: partner.id,
          recoveryCloudId: 'cloud-dr',
          policy: 'bench',
        });
        pairingOf.set(s.index, p.pairingId);
      });

      // 4. the items, straight into the database (what enable-replication.service.ts inserts, plus the
      // placement the enable job stores and the state it ends in)
      t0 = performance.now();
      const rows: unknown[] = [];
      for (const s of sites) {
        const partner = partnerOf(s.index, SERVERS);
        for (let k = 0; k < VMS_PER_SERVER; k++) {
          rows.push({
            id: `item_${randomBytes(12).toString('hex')}`, // as newId('item') makes them
            ms: s.id,
            vm: vmId(s.index, k),
            name: `ms${s.index}-vm-${k}`,
            host: vmHost(s.index, k),
            pairing: pairingOf.get(s.index),
            rms: (sites[partner] as Site).id,
            rhost: replicaHost(partner, k),
          });
        }
      }
      await sql.query(
        `INSERT INTO replicated_items (replicated_item_id, primary_management_server_id, vm_id, vm_name,
           primary_host_id, pairing_id, recovery_management_server_id, replica_host_id, storage_location,
           protection_state)
         SELECT r.id, r.ms, r.vm, r.name, r.host, r.pairing, r.rms, r.rhost, $2, 'Protected'
         FROM json_to_recordset($1::json) AS r(id text, ms text, vm text, name text, host text, pairing text,
           rms text, rhost text)`,
        [JSON.stringify(rows), STORAGE_LOCATION],
      );
      await sql.query('ANALYZE replicated_items');
      const insertS = (performance.now() - t0) / 1000;

      // 5. a first status report per server
      const firstReportAt = Date.now();
      const firstIngestMs = await pool(sites, 4, async (s) => {
        const t = performance.now();
        await s.client.call(
          'PUT',
          `/v1/management-servers/${s.id}/replication-status`,
          scaleStatus(s.index, SERVERS, VMS_PER_SERVER, POINTS_PER_ITEM, firstReportAt),
        );
        return performance.now() - t;
      });
      const check = await sql.query<{ n: string; withPoints: string; reported: string }>(
        `SELECT count(*) AS n, count(*) FILTER (WHERE jsonb_array_length(points) = $1) AS "withPoints",
           count(*) FILTER (WHERE status_reported_at IS NOT NULL) AS reported FROM replicated_items`,
        [POINTS_PER_ITEM],
      );
      const c = check.rows[0];
      if (
        !c ||
        Number(c.n) !== SERVERS * VMS_PER_SERVER ||
        Number(c.withPoints) !== Number(c.n) ||
        Number(c.reported) !== Number(c.n)
      )
        throw new Error(`the status reports did not reach every item: ${JSON.stringify(c)}`);
      o.log(
        `  setup: register ${registerS.toFixed(1)} s, inventories ${inventoryS.toFixed(1)} s, insert ${insertS.toFixed(1)} s; ${c.n} items, all with ${POINTS_PER_ITEM} points`,
      );

      const ids = (
        await sql.query<{ id: string }>('SELECT replicated_item_id AS id FROM replicated_items ORDER BY 1')
      ).rows.map((r) => r.id);
      const randomCursor = (): string => ids[Math.floor(Math.random() * ids.length)] ?? '';

      // 5b. without provider load: the same requests, and where the time goes (EXPLAIN ANALYZE, the
      // body validation of one status report in this process)
      const quiet: Record<'list100' | 'list1000' | 'read', number[]> = {
        list100: [],
        list1000: [],
        read: [],
      };
      for (let r = 0; r < (quick ? 50 : 200); r++) {
        quiet.list100.push((await reader.get(`/v1/replicated-items?limit=100&after=${randomCursor()}`)).ms);
        if (r % 4 === 0)
          quiet.list1000.push(
            (await reader.get(`/v1/replicated-items?limit=1000&after=${randomCursor()}`)).ms,
          );
        quiet.read.push((await reader.get(`/v1/replicated-items/${randomCursor()}`)).ms);
      }
      const explain = async (label: string, text: string, args: unknown[]): Promise<string> => {
        await sql.query('BEGIN');
        try {
          const plan = await sql.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) ${text}`, args);
          const lines = plan.rows.map((row) => row['QUERY PLAN']);
          o.log(`  EXPLAIN ${label}:\n    ${lines.join('\n    ')}`);
          return `${label}: ${lines.find((l) => l.startsWith('Execution Time')) ?? '?'}; ${lines[0]?.trim() ?? ''}`;
        } finally {
          await sql.query('ROLLBACK');
        }
      };
      const probe = sites[7] as Site;
      // the report it sent (so the points are the stored ones, as in most reports)
      const probeStatus = scaleStatus(probe.index, SERVERS, VMS_PER_SERVER, POINTS_PER_ITEM, firstReportAt);
      const plans = [
        await explain(
          'list limit 1000 after a cursor',
          'SELECT * FROM replicated_items WHERE replicated_item_id > $1 ORDER BY replicated_item_id LIMIT 1001',
          [randomCursor()],
        ),
        await explain(
          'list limit 100 ?managementServerId=',
          `SELECT * FROM replicated_items WHERE (primary_management_server_id = $1 OR recovery_management_server_id = $1)
           ORDER BY replicated_item_id LIMIT 101`,
          [probe.id],
        ),
        await explain(
          'read by id',
          `SELECT *, points FROM replicated_items WHERE replicated_item_id = $1 OR (vm_name = $1 AND NOT EXISTS
             (SELECT 1 FROM replicated_items WHERE replicated_item_id = $1)) LIMIT 2`,
          [randomCursor()],
        ),
        await explain(
          'status ingest, primary side (100 rows)',
          `UPDATE replicated_items i SET replication_health = r.health, health_reasons = r."healthReasons",
             host_protection_state = r."protectionState", last_point_id = r."lastPointId",
             last_point_cut_at = r."lastPointCutAt"::timestamptz, lag_seconds = r."lagSeconds",
             last_error = r."lastError", status_reported_at = now(), updated_at = now()
           FROM json_to_recordset($2::json) AS r("hostId" text, "vmId" text, "relationshipId" text,
             "replicaHostId" text, "protectionState" text, health text, "healthReasons" jsonb,
             "lastPointId" text, "lastPointCutAt" text, "lagSeconds" double precision, "lastError" jsonb)
           WHERE i.primary_management_server_id = $1 AND i.vm_id = r."vmId" AND i.primary_host_id = r."hostId"
             AND i.protection_state <> 'Disabling'`,
          [probe.id, JSON.stringify(probeStatus.relationships)],
        ),
        // the current statement first: the old one leaves 100 dead row versions (rolled back) behind
        await explain(
          'status ingest, replica side (100 rows x 24 points, unchanged), as now (unchanged points not written)',
          `UPDATE replicated_items i SET points = r.points, updated_at = now()
           FROM json_to_recordset($2::json) AS r("hostId" text, "relationshipId" text, points jsonb)
           WHERE i.recovery_management_server_id = $1 AND i.replica_host_id = r."hostId"
             AND CASE WHEN i.vm_id = r."relationshipId" THEN i.points IS DISTINCT FROM r.points ELSE false END`,
          [probe.id, JSON.stringify(probeStatus.replicas)],
        ),
        await explain(
          'status ingest, replica side (100 rows x 24 points, unchanged), as before 2026-11-22 18:00',
          `UPDATE replicated_items i SET points = r.points, updated_at = now()
           FROM json_to_recordset($2::json) AS r("hostId" text, "relationshipId" text, points jsonb)
           WHERE i.recovery_management_server_id = $1 AND i.replica_host_id = r."hostId"
             AND i.vm_id = r."relationshipId"`,
          [probe.id, JSON.stringify(probeStatus.replicas)],
        ),
      ];
      const parseStarted = performance.now();
      for (let r = 0; r < 20; r++) replicationStatusSchema.parse(JSON.parse(JSON.stringify(probeStatus)));
      const parseMs = (performance.now() - parseStarted) / 20;
      o.log(`  one status report: JSON.parse + zod validation ${parseMs.toFixed(1)} ms in this process`);

      // 6. under provider load: list pages, reads, memory
      const ingestMs: number[] = [];
      const loadErrors: string[] = [];
      stopLoad = startProviderLoad(sites, ingestMs, loadErrors);
      await sleep(quick ? 3_000 : 10_000); // let the staggered loops start
      const lat: Record<string, number[]> = {
        list100: [],
        list1000: [],
        listServer: [],
        read: [],
        readNewConn: [],
      };
      let peak = await memory();
      const cpuAtStart = {
        vault: await cpuSecondsOf(vault.proc.pid),
        postgres: await postgresCpuSeconds(db.pid),
        bench: process.cpuUsage(),
        reports: ingestMs.length,
      };
      const loadStarted = performance.now();
      const loadEnd = performance.now() + loadSeconds * 1000;
      let round = 0;
      let loadAvgPeak = loadavg()[0] ?? 0;
      while (performance.now() < loadEnd) {
        round++;
        (lat['list100'] as number[]).push(
          (await reader.get(`/v1/replicated-items?limit=100&after=${randomCursor()}`)).ms,
        );
        if (round % 4 === 0)
          (lat['list1000'] as number[]).push(
            (await reader.get(`/v1/replicated-items?limit=1000&after=${randomCursor()}`)).ms,
          );
        if (round % 2 === 0) {
          const s = sites[Math.floor(Math.random() * sites.length)] as Site;
          (lat['listServer'] as number[]).push(
            (await reader.get(`/v1/replicated-items?limit=100&managementServerId=${s.id}`)).ms,
          );
        }
        for (let r = 0; r < 3; r++)
          (lat['read'] as number[]).push((await reader.get(`/v1/replicated-items/${randomCursor()}`)).ms);
        if (round % 5 === 0) {
          const t = performance.now();
          await admin.get(`/v1/replicated-items/${randomCursor()}`);
          (lat['readNewConn'] as number[]).push(performance.now() - t);
        }
        if (round % 20 === 0) {
          const m = await memory();
          peak = {
            vaultMB: Math.max(peak.vaultMB, m.vaultMB),
            postgresMB: Math.max(peak.postgresMB, m.postgresMB),
          };
          loadAvgPeak = Math.max(loadAvgPeak, loadavg()[0] ?? 0);
        }
        await sleep(20);
      }
      const loadElapsedS = (performance.now() - loadStarted) / 1000;
      const cpuShare = {
        vault: (await cpuSecondsOf(vault.proc.pid)) - cpuAtStart.vault,
        postgres: (await postgresCpuSeconds(db.pid)) - cpuAtStart.postgres,
        bench: (() => {
          const u = process.cpuUsage(cpuAtStart.bench);
          return (u.user + u.system) / 1e6;
        })(),
        reports: ingestMs.length - cpuAtStart.reports,
      };
      notes.push(
        `CPU during the ${loadElapsedS.toFixed(0)} s under provider load (${cpuShare.reports} status reports, ~${Math.round((SERVERS * loadElapsedS) / (HEARTBEAT_INTERVAL_MS / 1000))} heartbeats, the list/read requests): vault ${cpuShare.vault.toFixed(1)} s, PostgreSQL ${cpuShare.postgres.toFixed(1)} s, this bench process (100 providers' TLS and documents, the reader) ${cpuShare.bench.toFixed(1)} s; per status report at most ${((1000 * cpuShare.vault) / Math.max(1, cpuShare.reports)).toFixed(0)} ms vault + ${((1000 * cpuShare.postgres) / Math.max(1, cpuShare.reports)).toFixed(0)} ms PostgreSQL CPU (all the load counted against the reports)`,
      );
      // a whole walk of the list by cursor, as `vault item list --all` would
      t0 = performance.now();
      let after: string | null = '';
      let walked = 0;
      while (after !== null) {
        const page = (await reader.get(`/v1/replicated-items?limit=1000${after ? `&after=${after}` : ''}`))
          .body as {
          items: unknown[];
          next: string | null;
        };
        walked += page.items.length;
        after = page.next;
      }
      const walkMs = performance.now() - t0;
      if (walked !== ids.length)
        throw new Error(`walking the list by cursor gave ${walked} items, not ${ids.length}`);
      const atEnd = await memory();
      peak = {
        vaultMB: Math.max(peak.vaultMB, atEnd.vaultMB),
        postgresMB: Math.max(peak.postgresMB, atEnd.postgresMB),
      };
      await stopLoad();
      stopLoad = null;
      const loadHeartbeatsErrors = loadErrors.length;

      // 7. heartbeat rate: 32 senders, new TLS connection per heartbeat as the provider makes them
      const hammerSeconds = Math.max(10, o.runtimeSeconds * 2);
      let beats = 0;
      let hammerErrors = 0;
      const hbMs: number[] = [];
      const hammerEnd = performance.now() + hammerSeconds * 1000;
      const hammerStart = performance.now();
      await Promise.all(
        Array.from({ length: HAMMER_CONCURRENCY }, async (_, w) => {
          let n = w;
          while (performance.now() < hammerEnd) {
            const s = sites[n++ % sites.length] as Site;
            const t = performance.now();
            try {
              await s.client.post(`/v1/management-servers/${s.id}/heartbeat`, {
                inventoryVersion: 1,
                providerVersion: 'bench',
              });
              beats++;
              hbMs.push(performance.now() - t);
            } catch {
              hammerErrors++;
            }
          }
        }),
      );
      const hbRate = beats / ((performance.now() - hammerStart) / 1000);
      const afterHammer = await memory();
      peak = {
        vaultMB: Math.max(peak.vaultMB, afterHammer.vaultMB),
        postgresMB: Math.max(peak.postgresMB, afterHammer.postgresMB),
      };

      const L = lat as Record<'list100' | 'list1000' | 'listServer' | 'read' | 'readNewConn', number[]>;
      const mList100 = measurement(
        'list page, limit 100, random cursor',
        'ms p99',
        false,
        { vault: [percentile(L.list100, 99)] },
        { vault: stats(L.list100) },
      );
      const mList1000 = measurement(
        'list page, limit 1000, random cursor',
        'ms p99',
        false,
        { vault: [percentile(L.list1000, 99)] },
        { vault: stats(L.list1000) },
      );
      const mListServer = measurement(
        'list, limit 100, ?managementServerId=',
        'ms p99',
        false,
        { vault: [percentile(L.listServer, 99)] },
        { vault: stats(L.listServer) },
      );
      const mRead = measurement(
        'read one item (24 points)',
        'ms p99',
        false,
        { vault: [percentile(L.read, 99)] },
        { vault: stats(L.read) },
      );
      const mReadNew = measurement(
        'read one item, new TLS connection (as the CLI)',
        'ms p99',
        false,
        { vault: [percentile(L.readNewConn, 99)] },
        { vault: stats(L.readNewConn) },
      );
      const mIngest = measurement(
        'status ingest per server under load (100+100 rows)',
        'ms p50',
        false,
        { vault: [percentile(ingestMs, 50)] },
        { vault: stats(ingestMs) },
      );
      const mFirstIngest = measurement(
        'first status ingest per server (4 at a time)',
        'ms p50',
        false,
        { vault: [percentile(firstIngestMs, 50)] },
        { vault: stats(firstIngestMs) },
      );
      const mInventory = measurement(
        'inventory push per server (8 at a time)',
        'ms p50',
        false,
        { vault: [percentile(inventoryMs, 50)] },
        { vault: stats(inventoryMs) },
      );
      const mWalk = measurement('walk all 10,000 items by cursor (limit 1000)', 'ms', false, {
        vault: [walkMs],
      });
      const mHb = measurement(
        `heartbeats, ${HAMMER_CONCURRENCY} concurrent senders, ${hammerSeconds} s`,
        'heartbeats/s',
        true,
        { vault: [hbRate] },
        { vault: { ...stats(hbMs), errors: hammerErrors } },
      );
      const mVaultMem = measurement(
        'vault RSS, peak (VmRSS)',
        'MB',
        false,
        { vault: [peak.vaultMB] },
        { vault: { idleMB: idle.vaultMB, endMB: afterHammer.vaultMB } },
      );
      const mPgMem = measurement(
        'PostgreSQL memory, peak (sum RssAnon + max RssShmem)',
        'MB',
        false,
        { vault: [peak.postgresMB] },
        { vault: { idleMB: idle.postgresMB } },
      );

      const p99List = Math.max(percentile(L.list100, 99), percentile(L.list1000, 99));
      notes.push(
        `setup: ${SERVERS} management servers registered through the API one at a time (a registration key is single use and only the newest works) in ${registerS.toFixed(1)} s; inventories (${VMS_PER_SERVER} VMs, 15 hosts, 2 clouds, 2 networks each) through PUT .../inventory in ${inventoryS.toFixed(1)} s; policy and ${SERVERS} pairings through the API`,
        `the ${ids.length} replicated items were INSERTed straight into the vault database (as enable-replication.service.ts inserts them, with the placement and state Protected the enable job would store), since enabling needs real hosts; their status (health, last point, ${POINTS_PER_ITEM} points each) came through PUT .../replication-status`,
        `measured for ${loadSeconds} s under provider load: ${SERVERS} servers heartbeating every ${HEARTBEAT_INTERVAL_MS / 1000} s and reporting status every 5-10 s (${ingestMs.length} status reports, ${loadHeartbeatsErrors} provider errors); list/read over one kept-alive connection with the admin token, one request at a time`,
        `heartbeat rate: ${beats} heartbeats, ${hammerErrors} errors, each over a new TLS connection with the provider certificate (as VaultClient sends them)`,
        `targets are the issue's absolute numbers; there is no peer program to compare with. Peak 1-min load average during the load phase ${loadAvgPeak.toFixed(2)} (${cpus().length} CPUs, client and vault and PostgreSQL on the same machine)`,
      );
      notes.push(
        `"quiet" rows: the same requests before the provider load started (nothing else talking to the vault)`,
        `one status report (100 relationships, 100 replicas x ${POINTS_PER_ITEM} points) costs ${parseMs.toFixed(1)} ms of JSON.parse + zod validation (measured in the bench process)`,
        ...plans.map((p) => `EXPLAIN ANALYZE (no load) ${p}`),
      );
      if (loadErrors.length > 0) notes.push(`first provider errors: ${loadErrors.slice(0, 3).join(' | ')}`);
      const result: SuiteResult = {
        suite: 'vault-scale',
        title: this.title,
        contenders: ['vault'],
        measurements: [
          measurement(
            'quiet: list page, limit 100',
            'ms p99',
            false,
            { vault: [percentile(quiet.list100, 99)] },
            { vault: stats(quiet.list100) },
          ),
          measurement(
            'quiet: list page, limit 1000',
            'ms p99',
            false,
            { vault: [percentile(quiet.list1000, 99)] },
            { vault: stats(quiet.list1000) },
          ),
          measurement(
            'quiet: read one item',
            'ms p99',
            false,
            { vault: [percentile(quiet.read, 99)] },
            { vault: stats(quiet.read) },
          ),
          mList100,
          mList1000,
          mListServer,
          mRead,
          mReadNew,
          mWalk,
          mIngest,
          mFirstIngest,
          mInventory,
          mHb,
          measurement('vault CPU under provider load', '% of a core', false, {
            vault: [(100 * cpuShare.vault) / loadElapsedS],
          }),
          measurement('PostgreSQL CPU under provider load', '% of a core', false, {
            vault: [(100 * cpuShare.postgres) / loadElapsedS],
          }),
          mVaultMem,
          mPgMem,
        ],
        targets: [
          checkValue(
            'list pages',
            'list p99 < 100 ms (ratio = worst p99 of limit 100/1000 / 100 ms)',
            p99List / 100,
            { max: 1 },
            'must',
          ),
          checkValue(
            mRead.name,
            'read p99 < 100 ms (ratio = p99 / 100 ms)',
            percentile(L.read, 99) / 100,
            { max: 1 },
            'must',
          ),
          checkValue(
            mVaultMem.name,
            'vault memory < 500 MB (ratio = peak RSS / 500 MB)',
            peak.vaultMB / 500,
            { max: 1 },
            'must',
          ),
          checkValue(
            mListServer.name,
            'filtered list p99 < 100 ms (ratio = p99 / 100 ms)',
            percentile(L.listServer, 99) / 100,
            { max: 1 },
            'stretch',
          ),
          checkValue(
            mReadNew.name,
            'read over a new connection p99 < 100 ms',
            percentile(L.readNewConn, 99) / 100,
            { max: 1 },
            'stretch',
          ),
        ],
        notes,
      };
      await writeResultFile(o, result);
      return result;
    } finally {
      await stopLoad?.();
      reader.close();
      await sql.end().catch(() => {});
      await vault.proc.stop();
    }
  },
};

/** Also writes the suite's result, with the load, to bench/results/vault-scale-<date>.json. */
async function writeResultFile(o: BenchOptions, result: SuiteResult): Promise<void> {
  const date = new Date().toISOString().slice(0, 10);
  const file = join(o.repoRoot, 'bench', 'results', `vault-scale-${date}.json`);
  const doc = { writtenAt: new Date().toISOString(), loadAverage: loadavg(), cpus: cpus().length, result };
  await writeFile(
    file,
    await format(JSON.stringify(doc), { ...(await resolveConfig(file)), parser: 'json' }),
  );
  o.log(`  result also written to bench/results/vault-scale-${date}.json`);
}

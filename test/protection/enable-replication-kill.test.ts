/**
 * Issue 4's proof that enabling replication is a durable job (docs/design/protection.md section 5):
 * two `secondsite vault serve` processes on one database behind one address (a TCP load balancer, as
 * a real deployment puts in front of its vault processes: management servers know one vault URL and
 * reach whichever process is alive), two management servers and two real host agents
 * (protection-fixtures.ts). The vault process holding the enable job's lease is killed with SIGKILL
 * at a seeded moment (right after the `replication.enable` command is recorded, or while the job waits
 * for the first recovery point). The other process takes the job over after the lease; the job ends
 * once, Succeeded; every command of the job was recorded once and run once by its management server;
 * the item is Protected with points. SECONDSITE_SEED replays a moment.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { VaultClient } from '../../src/manager/provider/vault-client.js';
import type { JobDetail } from '../../src/protocol/vault-api/jobs.schema.js';
import type { ReplicatedItemDetail } from '../../src/protocol/vault-api/replicated-items.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import {
  registerChildCleanup,
  spawnSecondsite,
  type ChildHandle,
} from '../../src/testing/process/child-process.js';
import { startTwoSites, until } from './protection-fixtures.js';

registerChildCleanup();
const server = useTestPostgres();
const SEED = seedFrom(process.env.SECONDSITE_SEED, 4004);

async function sql<T extends pg.QueryResultRow>(
  url: string,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end();
  }
}

/** A TCP load balancer: each connection goes to the next backend that accepts it. */
async function loadBalancer(backends: () => number[]): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let turn = 0;
  const lb = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    const ports = backends();
    const attempt = (left: number): void => {
      if (left === 0) {
        client.destroy();
        return;
      }
      const port = ports[turn++ % ports.length] ?? 0;
      const upstream = createConnection({ host: '127.0.0.1', port });
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        sockets.add(upstream);
        upstream.on('close', () => sockets.delete(upstream));
        client.pipe(upstream).pipe(client);
        upstream.on('error', () => client.destroy());
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
      });
      upstream.once('error', () => {
        if (!connected) attempt(left - 1); // that backend is down: the next one
      });
    };
    attempt(ports.length);
  });
  await new Promise<void>((r) => lb.listen(0, '127.0.0.1', r));
  return {
    port: (lb.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => lb.close(r));
    },
  };
}

interface Vault {
  child: ChildHandle;
  port: number;
  dataDir: string;
}

test('enable replication survives the SIGKILL of the vault process running it: one job, each command run once, Protected', async (t) => {
  const rng = new Rng(SEED);
  const moment = rng.next() < 0.5 ? 'enable-recorded' : 'waiting-first-point';
  const context = `seed ${SEED} (SECONDSITE_SEED), kill moment ${moment}`;
  t.diagnostic(context);
  const databaseUrl = await server.freshDatabase();
  const root = await mkdtemp(join(tmpdir(), 'ss-enable-kill-'));
  const vaults: Vault[] = [];
  // the vault processes stop before the management servers (whose hooks come later): these then
  // find no vault and stop at once
  const cleanups: Array<() => Promise<void>> = [];
  t.after(async () => {
    for (const c of cleanups) await c();
    for (const v of vaults) await v.child.stop();
    await server.dropDatabase(databaseUrl);
    await rm(root, { recursive: true, force: true });
  });
  for (const name of ['vault-1', 'vault-2']) {
    const dataDir = join(root, name);
    const child = spawnSecondsite(
      ['vault', 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--job-lease-seconds', '3'],
      { env: { DATABASE_URL: databaseUrl }, name },
    );
    vaults.push({ child, dataDir, port: 0 });
    const ready = await child.waitForReady(60_000);
    const v = vaults[vaults.length - 1]!;
    v.port = Number(new URL(String(ready['url'])).port);
  }
  const lb = await loadBalancer(() => vaults.map((v) => v.port));
  cleanups.push(() => lb.close());
  const url = `https://localhost:${lb.port}`;
  const caCertPem = await readFile(join(vaults[0]?.dataDir ?? '', 'ca.crt'), 'utf8');
  const token = (
    await Promise.any(vaults.map((v) => readFile(join(v.dataDir, 'admin.token'), 'utf8')))
  ).trim();
  const admin = new VaultClient({ url, caCertPem, token });
  let keys = 0;
  const { managers } = await startTwoSites(server, t, {
    admin,
    providerUrl: url,
    keyFile: async () => {
      const file = join(root, `key-${++keys}.json`);
      await writeFile(file, JSON.stringify(await admin.post<object>('/v1/registration-keys', {})), {
        mode: 0o600,
      });
      return file;
    },
  });

  // While the job should wait for the first point, the vault keeps the point from the item (a
  // test-only trigger): an 8 MiB disk replicates in milliseconds, and the report of its first point
  // could otherwise reach the vault before the job's last step starts or within one poll of it, so the
  // moment would never be seen (it failed so under CI load). The trigger goes right after the kill.
  const holdFirstPoint = moment === 'waiting-first-point';
  if (holdFirstPoint) {
    await sql(
      databaseUrl,
      `CREATE FUNCTION test_hold_first_point() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN NEW.last_point_id := OLD.last_point_id; RETURN NEW; END $$`,
    );
    await sql(
      databaseUrl,
      `CREATE TRIGGER test_hold_first_point BEFORE UPDATE ON replicated_items
       FOR EACH ROW EXECUTE FUNCTION test_hold_first_point()`,
    );
  }
  const enabled = await admin.post<{ items: Array<{ replicatedItemId: string; jobId: string | null }> }>(
    '/v1/replicated-items',
    { managementServerId: managers.a.id, vmIds: ['web'] },
  );
  const jobId = enabled.items[0]?.jobId ?? assert.fail('an enable job');
  const itemId = enabled.items[0]?.replicatedItemId ?? '';

  // the moment: the enable command recorded, or the job in its last step; who holds the job?
  const ownerPid = await until(`the moment (${context})`, async () => {
    const rows = await sql<{ lease_owner: string | null; ready: boolean }>(
      databaseUrl,
      moment === 'enable-recorded'
        ? `SELECT q.lease_owner, EXISTS (SELECT 1 FROM provider_commands c
             WHERE c.job_id = q.id AND c.kind = 'replication.enable') AS ready FROM jobs q WHERE q.id = $1`
        : `SELECT q.lease_owner, EXISTS (SELECT 1 FROM job_tasks k WHERE k.job_id = q.id
             AND k.name = 'wait-first-point' AND k.state = 'InProgress') AS ready FROM jobs q WHERE q.id = $1`,
      [jobId],
    );
    const m = /^vault-.+-(\d+)-[0-9a-f]+$/.exec(rows[0]?.lease_owner ?? '');
    return rows[0]?.ready && m ? Number(m[1]) : undefined;
  });
  const victim = vaults.find((v) => v.child.pid === ownerPid);
  assert.ok(victim, `the job runs in one of the two vaults (pid ${ownerPid}; ${context})`);
  // the load balancer is not told: it finds the dead process refusing connections and uses the other
  const exit = await victim.child.kill9();
  assert.equal(exit.signal, 'SIGKILL');
  if (holdFirstPoint) {
    await sql(databaseUrl, 'DROP TRIGGER test_hold_first_point ON replicated_items');
    await sql(databaseUrl, 'DROP FUNCTION test_hold_first_point()');
  }

  const job = await until(
    'the job to end',
    async () => {
      const j = await admin.get<JobDetail>(`/v1/jobs/${jobId}`);
      return ['Succeeded', 'Failed', 'Cancelled'].includes(j.state) ? j : undefined;
    },
    60_000,
  );
  assert.equal(job.state, 'Succeeded', `${context}\n${JSON.stringify(job, null, 1)}`);
  const events = job.events.map((e) => `${e.task ?? '-'}:${e.kind}`);
  assert.equal(events.filter((e) => e === '-:job.succeeded').length, 1, `${context}: ${events.join(' ')}`);
  assert.equal(events.filter((e) => e === '-:job.resumed').length, 1, `${context}: ${events.join(' ')}`);
  const queue = await sql<{ attempts: number; state: string }>(
    databaseUrl,
    'SELECT attempts, state FROM jobs WHERE id = $1',
    [jobId],
  );
  assert.deepEqual(
    queue,
    [{ attempts: 2, state: 'succeeded' }],
    `${context}: the killed run and the survivor's`,
  );

  // every command of the job recorded once (one per step and key), done, and run once by its manager
  const commands = await sql<{
    command_id: string;
    management_server_id: string;
    step: string;
    kind: string;
    state: string;
  }>(
    databaseUrl,
    'SELECT command_id, management_server_id, step, kind, state FROM provider_commands WHERE job_id = $1 ORDER BY created_at',
    [jobId],
  );
  assert.deepEqual(
    commands.map((c) => [c.kind, c.state]).sort(),
    [
      ['authorization.apply', 'done'],
      ['authorization.apply', 'done'],
      ['replication.enable', 'done'],
    ],
    context,
  );
  for (const site of ['a', 'b'] as const) {
    const mine = commands.filter((c) => c.management_server_id === managers[site].id);
    const runs = await sql<{ command_id: string; kind: string; state: string }>(
      managers[site].databaseUrl,
      'SELECT command_id, kind, state FROM provider_command_runs WHERE command_id = ANY($1::uuid[])',
      [mine.map((c) => c.command_id)],
    );
    assert.deepEqual(
      runs.map((r) => [r.command_id, r.kind, r.state]).sort(),
      mine.map((c) => [c.command_id, c.kind, 'done']).sort(),
      `${context}: site ${site} ran each of its commands once`,
    );
  }
  // the item is Protected, with points on the replica
  const item = await until('points on the item', async () => {
    const i = await admin.get<ReplicatedItemDetail>(`/v1/replicated-items/${itemId}`);
    return i.points.length > 0 ? i : undefined;
  });
  assert.equal(item.protectionState, 'Protected', context);
  assert.ok(item.lastPointId, context);
});

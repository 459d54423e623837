/**
 * The vault API against a real PostgreSQL, generated from the route table (issue 4's proof):
 * - the authorization matrix: every route x {anonymous, each role, a provider on its own management
 *   server, a provider on another's}, each cell checked against domain/vault/rbac.ts;
 * - schema-driven bad input for every route: no 5xx ever, a 4xx with a SECONDSITE_ERR_* code and a
 *   message;
 * - the OpenAPI document lists every route; the audit log records mutating requests and refuses edits.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { z } from 'zod/v4';
import { ROLES, allows, type Principal } from '../../src/domain/vault/rbac.js';
import type { VaultClient } from '../../src/manager/provider/vault-client.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import type { VaultRoute } from '../../src/vault/http/vault-route.js';
import { vaultRoutes } from '../../src/vault/vault-routes.js';
import { startTestVault, type TestVault } from './vault-fixtures.js';

const server = useTestPostgres();

/** The route table, built without a live vault (only its shape is read). */
function routeTable(): VaultRoute[] {
  const none = undefined as never;
  return vaultRoutes({
    db: none,
    identity: none,
    users: none,
    registration: none,
    managementServers: none,
    jobs: none,
    commands: none,
    heartbeatIntervalSeconds: 1,
    metrics: () => '',
  });
}

function pathFor(r: VaultRoute, msId: string): string {
  return r.path.replace(':managementServerId', msId).replace(':userName', 'admin');
}

interface Caller {
  name: string;
  client: VaultClient;
  principal: Principal | null;
  msId: string;
  foreign: boolean;
}

async function callers(v: TestVault): Promise<Caller[]> {
  const own = await v.register('site-a');
  const other = await v.register('site-b');
  const ownId = own.identity.registration.managementServerId;
  const otherId = other.identity.registration.managementServerId;
  const list: Caller[] = [
    { name: 'anonymous', client: v.client(), principal: null, msId: ownId, foreign: false },
  ];
  for (const role of ROLES) {
    const client = role === 'Owner' ? v.admin : await v.userClient(role);
    list.push({
      name: role,
      client,
      principal: { kind: 'user', userId: '', name: '', role },
      msId: ownId,
      foreign: false,
    });
  }
  const provider: Principal = {
    kind: 'provider',
    managementServerId: ownId,
    nodeName: 'node-1',
    certSerial: '',
  };
  list.push({
    name: 'provider (own site)',
    client: own.client,
    principal: provider,
    msId: ownId,
    foreign: false,
  });
  list.push({
    name: 'provider (other site)',
    client: own.client,
    principal: provider,
    msId: otherId,
    foreign: true,
  });
  return list;
}

function expectedAllowed(r: VaultRoute, c: Caller): boolean {
  if (r.action === 'public') return true;
  if (!c.principal) return false;
  if (!allows(c.principal, r.action)) return false;
  if (c.principal.kind === 'provider') return r.path.includes(':managementServerId') && !c.foreign;
  return true;
}

test('authorization matrix: every route x every principal, own and other site', async (t) => {
  const v = await startTestVault(server, t);
  const routes = routeTable();
  const who = await callers(v);
  let cells = 0;
  const wrong: string[] = [];
  for (const r of routes) {
    for (const c of who) {
      const { status, text } = await c.client.raw(
        r.method,
        pathFor(r, c.msId),
        r.method === 'GET' ? undefined : {},
      );
      cells++;
      const allowed = expectedAllowed(r, c);
      const denied = status === 401 || status === 403;
      const want = allowed ? 'allowed' : c.principal ? '403' : '401';
      const got = denied ? String(status) : `allowed (${status})`;
      if (allowed ? denied : status !== (c.principal ? 403 : 401))
        wrong.push(`${r.method} ${r.path} as ${c.name}: want ${want}, got ${got} ${text.slice(0, 160)}`);
      assert.ok(status < 500, `${r.method} ${r.path} as ${c.name}: ${status} ${text}`);
    }
  }
  assert.deepEqual(wrong, [], `${wrong.length} of ${cells} cells wrong`);
  assert.equal(cells, routes.length * who.length);
});

/** Values of the wrong type for a JSON-schema property. */
function wrongValues(prop: Record<string, unknown>): unknown[] {
  const type = prop['type'];
  const out: unknown[] = [null, { nested: true }];
  if (type !== 'string') out.push('a string');
  if (type !== 'number' && type !== 'integer') out.push(12.5, -1);
  if (type !== 'boolean') out.push(true);
  if (type === 'string') out.push('x'.repeat(70_000), '', '../../etc/passwd', '\u0000');
  if (type === 'integer' || type === 'number') out.push(1e300, -1e300, 0.5);
  return out;
}

test('bad input on every route: a 4xx with a code and a message, never a 5xx', async (t) => {
  const v = await startTestVault(server, t);
  const ms = await v.register('site-a');
  const msId = ms.identity.registration.managementServerId;
  const routes = routeTable();
  let requests = 0;
  const problems: string[] = [];
  const check = async (
    client: VaultClient,
    r: VaultRoute,
    label: string,
    body: unknown,
    rawText?: string,
  ): Promise<void> => {
    requests++;
    const res =
      rawText === undefined
        ? await client.raw(r.method, pathFor(r, msId), body)
        : await client.rawText(r.method, pathFor(r, msId), rawText);
    if (res.status >= 500)
      problems.push(`${r.method} ${r.path} ${label}: ${res.status} ${res.text.slice(0, 200)}`);
    if (res.status >= 400) {
      const err = (JSON.parse(res.text) as { error?: { code?: string; message?: string } }).error;
      if (!err?.code?.startsWith('SECONDSITE_ERR_') || !err.message)
        problems.push(`${r.method} ${r.path} ${label}: no code/message: ${res.text.slice(0, 200)}`);
    }
  };
  for (const r of routes) {
    const client = r.action.startsWith('provider.') ? ms.client : v.admin;
    if (!r.body) {
      await check(client, r, 'with an unexpected body', { unexpected: 1 });
      continue;
    }
    await check(client, r, 'not JSON', undefined, '{"truncated": ');
    await check(client, r, 'a JSON array', [1, 2]);
    await check(client, r, 'a JSON string', 'hello');
    await check(client, r, 'an unknown field', { surprise: 'x' });
    await check(client, r, 'over 1 MiB', { pad: 'x'.repeat(1_100_000) });
    const schema = z.toJSONSchema(r.body, { io: 'input', unrepresentable: 'any' }) as {
      properties?: Record<string, Record<string, unknown>>;
    };
    for (const [name, prop] of Object.entries(schema.properties ?? {})) {
      for (const value of wrongValues(prop))
        await check(client, r, `${name}=${JSON.stringify(value).slice(0, 30)}`, { [name]: value });
    }
  }
  for (const [method, path] of [
    ['GET', '/v1/nothing-here'],
    ['DELETE', '/v1/users'],
    ['GET', '/v1/management-servers/%E0%A4%A'],
    ['GET', '/v1/management-servers/no-such-server'],
  ] as const) {
    const res = await v.admin.raw(method, path);
    requests++;
    assert.ok(res.status >= 400 && res.status < 500, `${method} ${path}: ${res.status} ${res.text}`);
    assert.match(res.text, /SECONDSITE_ERR_/);
  }
  assert.deepEqual(problems, [], `${problems.length} of ${requests} bad requests were answered badly`);
  assert.ok(requests > 100, `${requests} bad requests`);
});

test('the OpenAPI document lists every route; the audit log records mutations and refuses edits', async (t) => {
  const v = await startTestVault(server, t);
  const doc = await v
    .client()
    .get<{ openapi: string; paths: Record<string, Record<string, unknown>> }>('/openapi.json');
  assert.equal(doc.openapi, '3.1.0');
  for (const r of routeTable()) {
    const p = r.path.replace(/:([A-Za-z]+)/g, '{$1}');
    assert.ok(doc.paths[p]?.[r.method.toLowerCase()], `${r.method} ${p} is documented`);
  }
  await v.admin.post('/v1/users', { name: 'ann', role: 'Operator' });
  await v.admin.post('/v1/users', { name: 'Bad Name!', role: 'Operator' }).catch(() => undefined);
  const audit = await v.admin.get<{
    entries: Array<{ principal: string; action: string; object: string | null; outcome: string }>;
  }>('/v1/audit');
  assert.deepEqual(
    audit.entries.slice(0, 2).map((e) => [e.principal, e.action, e.outcome]),
    [
      ['user admin (Owner)', 'user.write', 'SECONDSITE_ERR_INVALID_ARGUMENT'],
      ['user admin (Owner)', 'user.write', 'ok'],
    ],
  );
  const c = new pg.Client({ connectionString: v.databaseUrl });
  await c.connect();
  try {
    await assert.rejects(c.query("UPDATE audit_log SET outcome = 'ok'"), /append-only/);
    await assert.rejects(c.query('DELETE FROM audit_log'), /append-only/);
    await assert.rejects(c.query('TRUNCATE audit_log'), /append-only/);
  } finally {
    await c.end();
  }
});

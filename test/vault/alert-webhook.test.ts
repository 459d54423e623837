/**
 * Alerts reach a webhook (issue 4): with two vault processes on one database, both configured with
 * the webhook, a lost heartbeat is delivered once as alert.raised (a refused first delivery is
 * retried), and the next heartbeat once as alert.resolved.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ProviderSession } from '../../src/manager/provider/provider-session.js';
import { silentLogger } from '../../src/observability/logger.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { startTestVault } from './vault-fixtures.js';

const server = useTestPostgres();

interface Delivery {
  event: string;
  delivery: string;
  body: { event: string; alert: { kind: string; objectId: string; resolvedAt: string | null } };
  status: number;
}

test('alerts are delivered to the webhook once per event, retried when refused', async (t) => {
  const deliveries: Delivery[] = [];
  let refuseNext = true;
  const hook = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = refuseNext ? 503 : 200;
      refuseNext = false;
      deliveries.push({
        event: String(req.headers['x-secondsite-event']),
        delivery: String(req.headers['x-secondsite-delivery']),
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Delivery['body'],
        status,
      });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => hook.close(() => r())));
  const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alerts`;
  const databaseUrl = await server.freshDatabase();
  const options = { databaseUrl, heartbeatIntervalSeconds: 1, monitorIntervalMs: 200, alertWebhookUrl: url };
  const vaults = await Promise.all([startTestVault(server, t, options), startTestVault(server, t, options)]);
  t.after(() => server.dropDatabase(databaseUrl)); // after both vaults' own after hooks
  // the process that made the first administrator has its token
  const one = vaults.find((v) => v.adminToken !== null) ?? assert.fail('no vault made the administrator');
  const ms = await one.register('vmm-hooked');
  const msId = ms.identity.registration.managementServerId;
  const session = new ProviderSession(ms.client, msId, 1, 'test', silentLogger);
  session.start();
  await new Promise((r) => setTimeout(r, 1500));
  await session.stop();

  const waitFor = async (what: string, ok: () => boolean): Promise<void> => {
    const deadline = Date.now() + 30_000;
    while (!ok()) {
      if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(deliveries)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await waitFor('a delivered alert.raised', () =>
    deliveries.some((d) => d.event === 'alert.raised' && d.status === 200),
  );
  const raised = deliveries.filter((d) => d.event === 'alert.raised');
  assert.deepEqual(
    raised.map((d) => d.status),
    [503, 200],
    'refused once, then delivered once, by either vault process',
  );
  assert.equal(raised[1]?.body.alert.kind, 'management-server-heartbeat-lost');
  assert.equal(raised[1]?.body.alert.objectId, msId);
  assert.equal(raised[0]?.delivery, raised[1]?.delivery, 'the retry carries the same delivery id');

  await ms.client.post(`/v1/management-servers/${msId}/heartbeat`, {});
  await waitFor('a delivered alert.resolved', () => deliveries.some((d) => d.event === 'alert.resolved'));
  await new Promise((r) => setTimeout(r, 1500));
  const resolved = deliveries.filter((d) => d.event === 'alert.resolved');
  assert.equal(resolved.length, 1, 'resolved delivered once');
  assert.ok(resolved[0]?.body.alert.resolvedAt);
  assert.equal(deliveries.filter((d) => d.event === 'alert.raised').length, 2, 'no duplicate of raised');
});

import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { SecondsiteError, isSecondsiteError } from '../domain/errors.js';
import { silentLogger } from '../observability/logger.js';
import { ControlClient } from './control-client.js';
import { ControlServer } from './control-server.js';

let dir: string;
let server: ControlServer;
let client: ControlClient;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ss-control-'));
  server = new ControlServer(
    [
      {
        method: 'GET',
        path: '/v1/things/:id',
        handler: ({ params }) => Promise.resolve({ body: { id: params['id'] } }),
      },
      { method: 'POST', path: '/v1/things', handler: ({ body }) => Promise.resolve({ status: 201, body }) },
      {
        method: 'GET',
        path: '/v1/fail',
        handler: () =>
          Promise.reject(new SecondsiteError('SECONDSITE_ERR_INVALID_STATE', 'paused; resume it first')),
      },
      {
        method: 'GET',
        path: '/metrics',
        handler: () => Promise.resolve({ body: 'up 1\n', contentType: 'text/plain' }),
      },
    ],
    silentLogger,
  );
  await server.listen(join(dir, 'agent.sock'));
  client = new ControlClient(join(dir, 'agent.sock'));
});

after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

test('routes with params, bodies and text', async () => {
  assert.deepEqual(await client.get('/v1/things/a%20b'), { id: 'a b' });
  assert.deepEqual(await client.post('/v1/things', { x: 1 }), { x: 1 });
  assert.equal(await client.text('/metrics'), 'up 1\n');
  assert.equal((await stat(join(dir, 'agent.sock'))).mode & 0o777, 0o600);
});

test('errors keep their code and message across the socket', async () => {
  await assert.rejects(client.get('/v1/fail'), (e) => {
    assert.ok(isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE'));
    assert.equal(e.message, 'paused; resume it first');
    return true;
  });
  await assert.rejects(client.get('/v1/nope'), (e) => isSecondsiteError(e, 'SECONDSITE_ERR_NOT_FOUND'));
  await assert.rejects(client.delete('/v1/things'), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT'),
  );
  await assert.rejects(client.post('/v1/things', 'x'.repeat(2 * 1024 * 1024)), (e) =>
    isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_ARGUMENT'),
  );
});

test('a missing agent is reported as not running', async () => {
  await assert.rejects(new ControlClient(join(dir, 'nope.sock')).get('/v1/status'), (e) => {
    assert.ok(isSecondsiteError(e, 'SECONDSITE_ERR_CONNECTION_LOST'));
    assert.match(e.message, /not running/);
    return true;
  });
});

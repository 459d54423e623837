/**
 * A host enrols into a management server and the manager reads it, as a user runs it: the management
 * server in this process (registered with a test vault, its own PostgreSQL database), the CLI in real
 * processes ('manager host enroll-key|list|refresh', 'host init|enroll|disk|vm'), and a real host agent
 * ('host serve'). Checks: the installed identity; the poller marks the host connected, disconnected
 * when its agent stops (with the reason) and connected again after a restart; the inventory shows a
 * VM made on the host; rows are updated only on change; the host's peer API refuses a host
 * certificate and a manager.site certificate of another CA on /peer/v1/manager/*.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { appendFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ControlClient } from '../../src/control-api/control-client.js';
import { ensureSiteCa } from '../../src/manager/enrolment/site-ca.js';
import { managerControlSocket } from '../../src/manager/manager-server.js';
import { initCa } from '../../src/pki/ca.js';
import { createKeyAndCsr, signCsr } from '../../src/pki/csr.js';
import type { ManagedHostView } from '../../src/protocol/host-api/enrolment.schema.js';
import type { HostInventory } from '../../src/protocol/host-api/manager-peer.schema.js';
import { PEER_ALPN } from '../../src/protocol/host-api/peer.schema.js';
import { registerChildCleanup, spawnSecondsite } from '../../src/testing/process/child-process.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { freePort, startTestManager } from './manager-fixtures.js';
import { until } from '../../src/testing/wait/until.js';

registerChildCleanup();
const pg = useTestPostgres();
const bin = new URL('../../bin/secondsite.mjs', import.meta.url).pathname;

/** The CLI in a child process (asynchronously: the management server runs in this process). */
function cli(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = (error as { code?: unknown } | null)?.code;
      resolve({ status: error ? (typeof code === 'number' ? code : null) : 0, stdout, stderr });
    });
  });
}

test('enrol a host through the CLI; the poller follows it; its peer API admits only its manager', async (t) => {
  const { manager, dataDir: msDir } = await startTestManager(pg, t, { hostPollIntervalMs: 300 });
  const dir = await mkdtemp(join(tmpdir(), 'ss-enrol-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const hostDir = join(dir, 'host-a');
  const port = await freePort();
  const keyPath = join(dir, 'host-a.key.json');
  const control = new ControlClient(managerControlSocket(msDir));
  const hostView = async (): Promise<ManagedHostView | undefined> =>
    (await control.get<ManagedHostView[]>('/v1/hosts')).find((h) => h.hostId === 'host-a');

  // the key, through the manager's control socket
  const key = await cli(
    'manager',
    'host',
    'enroll-key',
    '--data-dir',
    msDir,
    '--out',
    keyPath,
    '--output',
    'json',
  );
  assert.equal(key.status, 0, key.stderr);
  assert.equal((await stat(keyPath)).mode & 0o777, 0o600);
  const keyFile = JSON.parse(await readFile(keyPath, 'utf8')) as Record<string, string>;
  assert.equal(keyFile['format'], 'secondsite-enrolment-key-1');
  assert.equal(keyFile['managerUrl'], manager.enrolmentListener.url);
  assert.match((await cli('manager', 'host', 'enroll-key', '--help')).stdout, /single-use/);

  // the host: init, enrol (key and CSR made here), files installed
  const init = await cli(
    'host',
    'init',
    '--host-id',
    'host-a',
    '--state-dir',
    hostDir,
    '--replication-port',
    String(port),
    '--authorize',
    'host-b',
  );
  assert.equal(init.status, 0, init.stderr);
  const enrol = await cli('host', 'enroll', '--state-dir', hostDir, '--key', keyPath);
  assert.equal(enrol.status, 0, enrol.stderr);
  assert.match(enrol.stdout, /enrolled host host-a into management server vmm-east/);
  assert.match(enrol.stdout, /Restart the host agent/);
  const again = await cli('host', 'enroll', '--state-dir', hostDir, '--key', keyPath);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /SECONDSITE_ERR_KEY_USED/);
  const siteCaPem = await readFile(join(msDir, 'site-ca', 'ca.crt'), 'utf8');
  assert.equal(await readFile(join(hostDir, 'pki', 'ca.crt'), 'utf8'), siteCaPem);
  const hostCert = new X509Certificate(await readFile(join(hostDir, 'pki', 'host-a.crt')));
  assert.match(hostCert.subject, /CN=host-a/);
  assert.ok(hostCert.checkIssued(new X509Certificate(siteCaPem)));
  const managerJson = JSON.parse(await readFile(join(hostDir, 'manager.json'), 'utf8')) as Record<
    string,
    string
  >;
  assert.equal(managerJson['managerCommonName'], 'manager.site');
  assert.equal(managerJson['siteCaFingerprint256'], new X509Certificate(siteCaPem).fingerprint256);

  // enrolled, not reachable yet
  const listed = await cli('manager', 'host', 'list', '--data-dir', msDir, '--output', 'json');
  assert.equal(listed.status, 0, listed.stderr);
  const first = (JSON.parse(listed.stdout) as ManagedHostView[])[0];
  assert.equal(first?.hostId, 'host-a');
  assert.equal(first.replicationPort, port);
  await until('host-a disconnected before its agent runs', async () => {
    const h = await hostView();
    return h?.connectionState === 'disconnected' && h.lastError ? h : undefined;
  });

  // another site's CA, trusted by host-a (as for cross-site replication), issues manager.site and host-b
  const otherCa = join(dir, 'other-ca');
  await initCa(otherCa, { name: 'other site' });
  await appendFile(join(hostDir, 'pki', 'ca.crt'), await readFile(join(otherCa, 'ca.crt'), 'utf8'));
  const issue = async (caDir: string, cn: string): Promise<{ key: string; cert: string }> => {
    const keyFilePath = join(dir, `${cn}-${caDir === otherCa ? 'other' : 'site'}.key`);
    const csrPem = await createKeyAndCsr(keyFilePath, cn);
    const signed = await signCsr({ caDir, csrPem, commonName: cn, usage: 'serverAuth,clientAuth' });
    return { key: await readFile(keyFilePath, 'utf8'), cert: signed.certPem };
  };

  const agentArgs = ['host', 'serve', '--state-dir', hostDir];
  let agent = spawnSecondsite(agentArgs, { name: 'host-a agent' });
  await agent.waitForReady();
  await until('host-a connected', async () => {
    const h = await hostView();
    return h?.connectionState === 'connected' && h.lastError === null ? h : undefined;
  });

  // the peer API: the manager's certificate reads the inventory
  const peerCall = (id: { key: string; cert: string }): Promise<HostInventory> =>
    ControlClient.peer({
      host: '127.0.0.1',
      port,
      hostId: 'host-a',
      tls: {
        key: id.key,
        cert: id.cert,
        ca: siteCaPem,
        servername: 'host-a',
        ALPNProtocols: [PEER_ALPN],
        minVersion: 'TLSv1.3',
      } as object,
    }).get<HostInventory>('/peer/v1/manager/inventory');
  const siteCa = await ensureSiteCa(msDir, 'vmm-east');
  assert.equal(
    (await peerCall({ key: siteCa.manager.keyPem, cert: siteCa.manager.certPem })).hostId,
    'host-a',
  );
  // a host certificate of the site CA (host-b is in host-a's authorization list): refused by the route
  await assert.rejects(peerCall(await issue(siteCa.caDir, 'host-b')), {
    code: 'SECONDSITE_ERR_UNAUTHORIZED',
    message: /only this host's management server/,
  });
  // host-b from the other CA gets past TLS and admission too (so that CA is trusted) ...
  await assert.rejects(peerCall(await issue(otherCa, 'host-b')), { code: 'SECONDSITE_ERR_UNAUTHORIZED' });
  // ... but manager.site from the other CA is not this host's manager: the connection is closed
  await assert.rejects(peerCall(await issue(otherCa, 'manager.site')), (e: Error & { code?: string }) => {
    assert.notEqual(e.code, undefined);
    assert.doesNotMatch(String(e.code), /ERR_TLS|CERT/, 'refused by the guard, not by TLS');
    return true;
  });

  // a VM made on the host shows in the inventory after a refresh
  const disk = await cli('host', 'disk', 'create', 'vm1-d0', '--size', '64M', '--state-dir', hostDir);
  assert.equal(disk.status, 0, disk.stderr);
  const vm2 = await cli(
    'host',
    'vm',
    'create',
    'vm1',
    '--disks',
    'vm1-d0',
    '--nic',
    'nic0:prod:10.0.0.5:0',
    '--state-dir',
    hostDir,
  );
  assert.equal(vm2.status, 0, vm2.stderr);
  const refreshed = await cli('manager', 'host', 'refresh', '--data-dir', msDir, '--output', 'json');
  assert.equal(refreshed.status, 0, refreshed.stderr);
  assert.equal(
    (JSON.parse(refreshed.stdout) as { hosts: ManagedHostView[] }).hosts[0]?.vmCount,
    1,
    refreshed.stdout,
  );
  const inventory = await control.get<HostInventory>('/v1/hosts/host-a/inventory');
  assert.deepEqual(inventory.vms, [
    {
      vmId: 'vm1',
      name: 'vm1',
      state: 'off',
      disks: [{ diskId: 'vm1-d0', sizeBytes: 64 * 1024 * 1024 }],
      nics: [{ nicId: 'nic0', network: 'prod', ipv4: '10.0.0.5' }],
    },
  ]);
  assert.ok(inventory.memoryBytes > 0 && inventory.cpuCount > 0);
  assert.equal(inventory.storageLocations[0]?.name, 'default');
  assert.ok((inventory.storageLocations[0]?.capacityBytes ?? 0) > 0);
  assert.match(
    (await cli('manager', 'host', 'list', '--data-dir', msDir)).stdout,
    /host-a\s+connected\s+127\.0\.0\.1:/,
  );

  // nothing changes, nothing is written: count UPDATEs of hosts while refreshing
  await manager.db.query(`
    CREATE TABLE test_host_updates (n integer NOT NULL);
    CREATE FUNCTION test_count_host_update() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN INSERT INTO test_host_updates VALUES (1); RETURN NEW; END $$;
    CREATE TRIGGER test_count_host_update AFTER UPDATE ON hosts
      FOR EACH ROW EXECUTE FUNCTION test_count_host_update();`);
  for (let i = 0; i < 3; i++) await control.post('/v1/hosts/refresh');
  const updates = async (): Promise<number> =>
    (await manager.db.query('SELECT 1 FROM test_host_updates')).rowCount;
  assert.equal(await updates(), 0, 'a poll that finds nothing new writes nothing');

  // the agent hangs (SIGSTOP): the poll times out, disconnected; it goes on: connected again
  agent.pause();
  const hung = await until('host-a disconnected while its agent hangs', async () => {
    const h = await hostView();
    return h?.connectionState === 'disconnected' ? h : undefined;
  });
  assert.match(hung.lastError ?? '', /did not answer at 127\.0\.0\.1:\d+ within \d+ ms/);
  agent.resume();
  await until('host-a connected after its agent went on', async () => {
    const h = await hostView();
    return h?.connectionState === 'connected' ? h : undefined;
  });

  // the agent stops: disconnected, with the reason; restarted: connected again
  agent.signalGroup('SIGTERM');
  assert.equal((await agent.exited).code, 0);
  const down = await until('host-a disconnected after its agent stopped', async () => {
    const h = await hostView();
    return h?.connectionState === 'disconnected' ? h : undefined;
  });
  assert.match(down.lastError ?? '', /host-a does not answer at 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  assert.ok((await updates()) >= 1);
  agent = spawnSecondsite(agentArgs, { name: 'host-a agent (restarted)' });
  await agent.waitForReady();
  const up = await until('host-a connected again', async () => {
    const h = await hostView();
    return h?.connectionState === 'connected' ? h : undefined;
  });
  assert.equal(up.lastError, null);
  assert.equal(up.vmCount, 1);
  agent.signalGroup('SIGTERM');
  await agent.exited;
});

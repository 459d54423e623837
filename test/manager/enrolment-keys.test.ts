/**
 * Enrolment keys against a management server in this process (real PostgreSQL, real HTTPS listener,
 * the host side's enrollHost): single-use, newest only, expiring, tampered and foreign keys are
 * refused by name and install nothing; only the secret's SHA-256 is stored; enrolling a host again
 * with a new key replaces its certificate.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { enrollHost } from '../../src/host/agent/manager-enrolment.js';
import { EnrolmentListener } from '../../src/manager/enrolment/enrolment-listener.js';
import { ensureSiteCa } from '../../src/manager/enrolment/site-ca.js';
import { silentLogger } from '../../src/observability/logger.js';
import { initCa } from '../../src/pki/ca.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import type { EnrolmentKeyFile } from '../../src/protocol/host-api/enrolment.schema.js';
import { hostStateDir, startTestManager } from './manager-fixtures.js';

const pg = useTestPostgres();

test('enrolment keys: used, superseded, expired, tampered and foreign keys are refused by name', async (t) => {
  const { manager, dataDir } = await startTestManager(pg, t);
  const db = manager.db;
  let n = 0;
  const keyFile = async (mutate?: (k: EnrolmentKeyFile) => EnrolmentKeyFile): Promise<string> => {
    const key = await manager.enrolmentService.createKey();
    const path = join(dataDir, `key-${++n}.json`);
    await writeFile(path, JSON.stringify(mutate ? mutate(key) : key));
    return path;
  };
  const hostB = await hostStateDir(t, 'host-b');
  const enrol = (stateDir: string, key: string): ReturnType<typeof enrollHost> =>
    enrollHost({ stateDir, keyFile: key });

  // happy path, and the key is spent
  const k1 = await keyFile();
  const first = await enrol(hostB, k1);
  assert.equal(first.hostId, 'host-b');
  assert.equal(first.managementServerName, 'vmm-east');
  assert.equal((await stat(join(hostB, 'pki', 'host-b.key'))).mode & 0o777, 0o600);
  const row1 = (
    await db.query<{ cert_serial: string }>("SELECT cert_serial FROM hosts WHERE host_id = 'host-b'")
  ).rows[0];
  assert.ok(row1);
  const hostC = await hostStateDir(t, 'host-c');
  await assert.rejects(enrol(hostC, k1), { code: 'SECONDSITE_ERR_KEY_USED', message: /single-use/ });

  // only the secret's SHA-256 is kept
  const k1File = JSON.parse(await readFile(k1, 'utf8')) as EnrolmentKeyFile;
  const stored = (
    await db.query<{ secret_sha256: Buffer; used_for: string }>(
      'SELECT secret_sha256, used_for FROM enrolment_keys WHERE key_id = $1',
      [k1File.keyId],
    )
  ).rows[0];
  assert.deepEqual(stored?.secret_sha256, createHash('sha256').update(k1File.secret).digest());
  assert.equal(stored?.used_for, 'host-b');

  // only the newest key is valid
  const k2 = await keyFile();
  const k3 = await keyFile();
  await assert.rejects(enrol(hostC, k2), { code: 'SECONDSITE_ERR_KEY_SUPERSEDED', message: /newest/ });

  // tampered: another secret, another key id
  const wrongSecret = await keyFile((k) => ({ ...k, secret: `${k.secret.slice(0, -2)}xx` }));
  await assert.rejects(enrol(hostC, wrongSecret), { code: 'SECONDSITE_ERR_KEY_INVALID', message: /altered/ });
  const k4 = await keyFile();
  const wrongId = join(dataDir, 'wrong-id.json');
  const k4File = JSON.parse(await readFile(k4, 'utf8')) as EnrolmentKeyFile;
  await writeFile(wrongId, JSON.stringify({ ...k4File, keyId: 'enk_000000000000000000000000' }));
  await assert.rejects(enrol(hostC, wrongId), { code: 'SECONDSITE_ERR_KEY_INVALID' });
  void k3;

  // expired
  const k5 = await keyFile();
  const k5File = JSON.parse(await readFile(k5, 'utf8')) as EnrolmentKeyFile;
  await db.query("UPDATE enrolment_keys SET expires_at = now() - interval '1 minute' WHERE key_id = $1", [
    k5File.keyId,
  ]);
  await assert.rejects(enrol(hostC, k5), { code: 'SECONDSITE_ERR_KEY_EXPIRED', message: /expired at/ });

  // another management server's key (by name), and a key whose site CA is not this listener's
  const k6 = await keyFile((k) => ({ ...k, managementServerName: 'vmm-west' }));
  await assert.rejects(enrol(hostC, k6), { code: 'SECONDSITE_ERR_KEY_FOREIGN', message: /vmm-west/ });
  const otherCa = join(dataDir, 'other-ca');
  await initCa(otherCa, { name: 'other site' });
  const otherCaPem = await readFile(join(otherCa, 'ca.crt'), 'utf8');
  const k7 = await keyFile((k) => ({ ...k, siteCaCertPem: otherCaPem }));
  await assert.rejects(enrol(hostC, k7), { code: 'SECONDSITE_ERR_KEY_FOREIGN', message: /site CA/ });

  // nothing was installed on the refused host
  await assert.rejects(stat(join(hostC, 'pki', 'host-c.crt')), { code: 'ENOENT' });
  await assert.rejects(stat(join(hostC, 'manager.json')), { code: 'ENOENT' });
  assert.equal((await db.query("SELECT 1 FROM hosts WHERE host_id = 'host-c'")).rowCount, 0);

  // enrolling host-b again with a new key replaces its certificate (and the key on the host)
  const keyBefore = await readFile(join(hostB, 'pki', 'host-b.key'), 'utf8');
  const k8 = await keyFile();
  await enrol(hostB, k8);
  const row2 = (
    await db.query<{ cert_serial: string }>("SELECT cert_serial FROM hosts WHERE host_id = 'host-b'")
  ).rows[0];
  assert.notEqual(row2?.cert_serial, row1.cert_serial);
  assert.notEqual(await readFile(join(hostB, 'pki', 'host-b.key'), 'utf8'), keyBefore);
  assert.equal((await db.query('SELECT 1 FROM hosts')).rowCount, 1, 'host-b once');

  // two hosts racing with one key: one enrols, the other is told the key was used
  const k9 = await keyFile();
  const raced = await Promise.allSettled([
    enrol(await hostStateDir(t, 'host-d'), k9),
    enrol(await hostStateDir(t, 'host-e'), k9),
  ]);
  assert.equal(raced.filter((r) => r.status === 'fulfilled').length, 1);
  const lost = raced.find((r) => r.status === 'rejected');
  assert.equal((lost?.reason as { code?: string } | undefined)?.code, 'SECONDSITE_ERR_KEY_USED');
  assert.equal((await db.query("SELECT 1 FROM hosts WHERE host_id IN ('host-d', 'host-e')")).rowCount, 1);

  // a listener address in use is refused with the option to change
  const taken = Number(new URL(manager.enrolmentListener.url).port);
  const ca = await ensureSiteCa(dataDir, 'vmm-east');
  await assert.rejects(
    new EnrolmentListener(manager.enrolmentService, silentLogger).listen(
      { host: '127.0.0.1', port: taken },
      { ...ca.enrolmentServer, caCertPem: ca.caCertPem },
    ),
    { code: 'SECONDSITE_ERR_INVALID_ARGUMENT', message: /EADDRINUSE.*--enrol-listen/ },
  );

  // the key's lifetime is bounded
  await assert.rejects(manager.enrolmentService.createKey(121), { code: 'SECONDSITE_ERR_INVALID_ARGUMENT' });
});

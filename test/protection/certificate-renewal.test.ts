/**
 * Certificates renew while replication runs (docs/design/certificate-renewal.md), on two sites with
 * real host agents (protection-fixtures.ts). The rounds are made to find every certificate due a few
 * seconds after it was issued, so within the test each management server renews its provider
 * certificate, its own certificates and its host's certificate by itself, repeatedly; the replica
 * host is also renewed on demand through the CLI. Throughout, recovery points keep advancing: a
 * renewed host presents its new certificate to new connections without a restart, the replica host
 * restarted with its new pair takes the primary's reconnection (the primary, renewed by then, reads
 * its identity when it dials; which of its two valid certificates it presents is not checked here),
 * and the sites stay connected to the vault.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { HostCertificateRenewal } from '../../src/manager/hosts/host-certificates.js';
import { keyCertPairPaths, readKeyCertPair } from '../../src/pki/key-cert-pair.js';
import { ENROLMENT_SERVER_CN, type ManagedHostView } from '../../src/protocol/host-api/enrolment.schema.js';
import { PEER_ALPN } from '../../src/protocol/host-api/peer.schema.js';
import type { HostView } from '../../src/protocol/vault-api/fabric.schema.js';
import type { ReplicatedItemDetail } from '../../src/protocol/vault-api/replicated-items.schema.js';
import type { ManagementServerView } from '../../src/protocol/vault-api/vault-api.schema.js';
import { useTestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { startTestVault } from '../vault/vault-fixtures.js';
import { cli, startTwoSites, until, type Site } from './protection-fixtures.js';

const pg = useTestPostgres();

const DAY_SECONDS = 86_400;
/** Host and manager certificates (825 days) are due 20 s after they were issued; providers' 9 s. */
const FRACTION = 1 - 20 / (825 * DAY_SECONDS);

/** The serial of the certificate presented to a new TLS connection, made with `site`'s manager.site. */
async function presentedSerial(
  site: Site,
  at: { host: string; port: number; servername: string; alpn?: string },
): Promise<string> {
  const caDir = join(site.dataDir, 'site-ca');
  const manager = await readKeyCertPair(keyCertPairPaths(caDir, 'manager'));
  const ca = await readFile(join(caDir, 'ca.crt'), 'utf8');
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: at.host,
      port: at.port,
      key: manager.keyPem,
      cert: manager.certPem,
      ca,
      servername: at.servername,
      ...(at.alpn ? { ALPNProtocols: [at.alpn] } : {}),
    });
    socket.once('secureConnect', () => {
      resolve(socket.getPeerCertificate().serialNumber.toUpperCase());
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

const hostEndpoint = (h: ManagedHostView) => ({
  host: h.replicationAddress,
  port: h.replicationPort,
  servername: h.hostId,
  alpn: PEER_ALPN,
});

const enrolmentEndpoint = (site: Site) => {
  const url = new URL(site.server.enrolmentListener.url);
  return { host: url.hostname, port: Number(url.port), servername: ENROLMENT_SERVER_CN };
};

test('certificates renew by themselves and on demand while replication goes on', async (t) => {
  const vault = await startTestVault(pg, t);
  const { managers, lab } = await startTwoSites(pg, t, vault, {
    certificateCheckIntervalMs: 500,
    certificateRemainingFraction: FRACTION,
  });
  const admin = vault.admin;
  const hostOf = async (site: Site, hostId: string): Promise<ManagedHostView> => {
    const host = (await site.control.get<ManagedHostView[]>('/v1/hosts')).find((h) => h.hostId === hostId);
    assert.ok(host, `${hostId} is enrolled`);
    return host;
  };
  const enrolled = { a1: await hostOf(managers.a, 'host-a1'), b1: await hostOf(managers.b, 'host-b1') };
  const listenerSerials = [
    await presentedSerial(managers.a, enrolmentEndpoint(managers.a)),
    await presentedSerial(managers.b, enrolmentEndpoint(managers.b)),
  ];

  await admin.post('/v1/replicated-items', { managementServerId: managers.a.id, vmIds: ['web'] });
  const item = (): Promise<ReplicatedItemDetail> =>
    admin.get<ReplicatedItemDetail>('/v1/replicated-items/web');
  /** A recovery point newer than `after`, with Normal health. */
  const newerPoint = (what: string, after: string | null): Promise<ReplicatedItemDetail> =>
    until(
      what,
      async () => {
        const i = await item();
        return i.lastPointId !== null && i.lastPointId !== after && i.replicationHealth === 'Normal'
          ? i
          : undefined;
      },
      90_000,
    );
  const first = await newerPoint('the first recovery point', null);

  // on demand: the replica host, through the CLI; its listener presents the new one at once
  const renewed = JSON.parse(
    await cli(
      'manager',
      'host',
      'renew-certificate',
      'host-b1',
      '--data-dir',
      managers.b.dataDir,
      '--output',
      'json',
    ),
  ) as HostCertificateRenewal;
  assert.equal(renewed.hostId, 'host-b1');
  assert.notEqual(renewed.serial, renewed.previousSerial);
  assert.equal((await hostOf(managers.b, 'host-b1')).certSerial, renewed.serial);
  assert.equal(await presentedSerial(managers.b, hostEndpoint(enrolled.b1)), renewed.serial);
  // the vault learns the new end from the next inventory (the renewal moved its version)
  await until('the vault shows the renewed end', async () => {
    const { hosts } = await admin.get<{ hosts: HostView[] }>(`/v1/hosts?managementServer=${managers.b.id}`);
    return hosts.find((h) => h.hostId === 'host-b1' && h.certNotAfter === renewed.notAfter);
  });

  // by the round: the primary host, once due
  await until('host-a1 renewed by its management server', async () => {
    const now = await hostOf(managers.a, 'host-a1');
    return now.certSerial !== enrolled.a1.certSerial ? now : undefined;
  });
  assert.notEqual(await presentedSerial(managers.a, hostEndpoint(enrolled.a1)), enrolled.a1.certSerial);

  const second = await newerPoint('a point after the renewals', first.lastPointId);
  // the replica host restarts with its installed pair; the primary reconnects with its renewed one
  await lab.stopHost('host-b1');
  await lab.start('host-b1');
  await newerPoint('a point after the replica host restarted', second.lastPointId);

  // the management servers renewed their provider certificates and stay connected to the vault
  for (const site of [managers.a, managers.b]) {
    await until('a renewed provider certificate', () =>
      Promise.resolve(site.server.providerCertificate.show().lastRenewedAt ?? undefined),
    );
    const view = await admin.get<ManagementServerView>(`/v1/management-servers/${site.id}`);
    assert.equal(view.connectionState, 'connected');
    assert.equal(site.server.session.lastError, null);
  }
  // ... and their own: the enrolment listeners present renewed certificates, the hosts stay connected
  for (const [i, site, hostId] of [
    [0, managers.a, 'host-a1'],
    [1, managers.b, 'host-b1'],
  ] as const) {
    // (renewed every 20 s: the one presented at the start may have been a renewed one already)
    await until(`${hostId}'s management server presents a certificate renewed since the start`, async () => {
      const own = site.server.ownCertificatesStatus;
      if (own.lastError !== null) throw new Error(own.lastError); // named if time runs out
      const serial = await presentedSerial(site, enrolmentEndpoint(site));
      return serial !== listenerSerials[i] ? serial : undefined;
    });
    await until(`${hostId} connected`, async () => {
      const h = await hostOf(site, hostId);
      return h.connectionState === 'connected' && h.lastError === null ? h : undefined;
    });
  }
});

/**
 * Enrolling this host into a management server (`secondsite host enroll`, docs/design/vault.md
 * section 6), on the host:
 *
 *   1. read the key file (the manager's enrolment URL and site CA, the key id and secret);
 *   2. make the host's key and a CSR here (CN = host id; the key never leaves this host);
 *   3. post `{keyId, secret, hostId, csrPem, replicationAddress, replicationPort}` to the enrolment
 *      listener over HTTPS, trusting only the key file's site CA and the name `enrol.manager.site`
 *      (a listener of another site CA: the key belongs to another management server, KEY_FOREIGN);
 *   4. check the answer (a certificate for this host id and this key, from that site CA);
 *   5. install `<pkiDir>/<hostId>.key|.crt`, `ca.crt` (the site CA) and `<stateDir>/manager.json`:
 *      every file is written and synced beside its target first, then all are renamed over their
 *      targets together, so a crash leaves the old identity or (but for a crash between the renames)
 *      the new one.
 *
 * A running agent keeps the identity and manager it started with: restart it (`secondsite host serve`)
 * to use the new ones.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { ControlClient } from '../../control-api/control-client.js';
import { isSecondsiteError, SecondsiteError } from '../../domain/errors.js';
import { identityPaths } from '../../pki/ca.js';
import { createKeyAndCsr } from '../../pki/csr.js';
import {
  ENROLMENT_PATH,
  ENROLMENT_SERVER_CN,
  enrolmentKeyFileSchema,
  enrolmentResultSchema,
  type EnrolmentKeyFile,
  type EnrolmentResult,
} from '../../protocol/host-api/enrolment.schema.js';
import { NodeStorage } from '../storage/node-storage.js';
import type { Storage } from '../storage/storage.js';
import { loadHostConfig } from './host-config.js';
import { managerFilePath, type ManagerFile } from './manager-caller.js';

export interface EnrolOptions {
  readonly stateDir: string;
  readonly keyFile: string;
  /** The replication address the manager and other hosts reach (default: host.json listenHost). */
  readonly address?: string | undefined;
  /** The replication port they reach (default: host.json listenPort). */
  readonly port?: number | undefined;
  /** Reach the enrolment listener at another URL than the key file's. */
  readonly managerUrl?: string | undefined;
  readonly storage?: Storage;
}

export interface EnrolOutcome {
  readonly hostId: string;
  readonly managementServerName: string;
  readonly managerUrl: string;
  readonly replicationAddress: string;
  readonly replicationPort: number;
  readonly certPath: string;
  readonly certNotAfter: string;
  readonly siteCaFingerprint256: string;
}

export async function readEnrolmentKeyFile(path: string): Promise<EnrolmentKeyFile> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (e) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_NOT_FOUND',
      `cannot read the enrolment key file ${path}: ${(e as Error).message}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = undefined;
  }
  const r = enrolmentKeyFileSchema.safeParse(parsed);
  if (!r.success) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_KEY_INVALID',
      `${path} is not an enrolment key file; make one with 'secondsite manager host enroll-key' on the management server`,
    );
  }
  return r.data;
}

function endpointOf(url: string): { host: string; port: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    u = new URL('invalid://');
  }
  if (u.protocol !== 'https:' || !u.hostname) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `the management server's enrolment URL must be https://HOST:PORT, not '${url}'`,
    );
  }
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 443) };
}

async function postEnrolment(
  key: EnrolmentKeyFile,
  url: string,
  body: Record<string, unknown>,
): Promise<EnrolmentResult> {
  const { host, port } = endpointOf(url);
  const client = ControlClient.peer({
    host,
    port,
    hostId: 'the management server',
    tls: {
      ca: key.siteCaCertPem,
      rejectUnauthorized: true,
      servername: ENROLMENT_SERVER_CN,
      signal: AbortSignal.timeout(60_000),
      checkServerIdentity: (_h: string, cert: PeerCertificate) => {
        const cn = (cert.subject as unknown as Record<string, unknown> | undefined)?.['CN'];
        return cn === ENROLMENT_SERVER_CN
          ? undefined
          : new SecondsiteError(
              'SECONDSITE_ERR_KEY_FOREIGN',
              `${url} is not a management server's enrolment listener (its certificate names '${String(cn)}')`,
            );
      },
    },
  });
  let answer: unknown;
  try {
    answer = await client.post<unknown>(ENROLMENT_PATH, body);
  } catch (e) {
    if (isSecondsiteError(e, 'SECONDSITE_ERR_CONNECTION_LOST')) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_CONNECTION_LOST',
        `the management server does not answer at ${url}; check that 'secondsite manager serve' runs there and its --enrol-listen address (or pass --manager-url)`,
        { url },
      );
    }
    if (isSecondsiteError(e)) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT/.test(err.code)) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_KEY_FOREIGN',
        `the management server at ${url} is not the one that made this key (its certificate is not from the key's site CA: ${err.code}); make a key on the management server this host should belong to`,
        { url, tlsError: err.code },
      );
    }
    throw new SecondsiteError(
      'SECONDSITE_ERR_CONNECTION_LOST',
      `cannot reach the management server at ${url}: ${err.message}`,
      { url },
    );
  }
  const r = enrolmentResultSchema.safeParse(answer);
  if (!r.success) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INTERNAL',
      `${url} answered something that is not an enrolment`,
    );
  }
  return r.data;
}

/** Checks the answer: this host's certificate, for the key made here, from the key file's site CA. */
function checkResult(result: EnrolmentResult, key: EnrolmentKeyFile, hostId: string, keyPem: string): void {
  const cert = new X509Certificate(result.certPem);
  const siteCa = new X509Certificate(key.siteCaCertPem);
  const ok =
    result.siteCaCertPem.trim() === key.siteCaCertPem.trim() &&
    cert.subject.split('\n').includes(`CN=${hostId}`) &&
    cert.checkIssued(siteCa) &&
    cert.verify(siteCa.publicKey) &&
    cert.checkPrivateKey(createPrivateKey(keyPem));
  if (!ok) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INTERNAL',
      `the management server answered a certificate that is not this host's (${hostId}) from its site CA; nothing was installed`,
    );
  }
}

export async function enrollHost(options: EnrolOptions): Promise<EnrolOutcome> {
  const storage = options.storage ?? new NodeStorage();
  const config = await loadHostConfig(options.stateDir);
  const key = await readEnrolmentKeyFile(options.keyFile);
  const address = options.address ?? config.replication.listenHost;
  const port = options.port ?? config.replication.listenPort;
  if (address === '0.0.0.0' || address === '::' || address === '') {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `the replication listener binds every address (${address}); pass --address with the address the management server and other hosts reach this host at`,
    );
  }
  if (port === 0) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      "host.json's replication listenPort is 0 (any free port), which the management server cannot find; set a fixed port there, or pass --port with the port the agent listens on",
    );
  }
  const pkiDir = config.replication.pkiDir;
  await storage.mkdir(pkiDir);
  const paths = identityPaths(pkiDir, config.hostId);
  const staged = {
    key: `${paths.keyPath}.enrol`,
    cert: `${paths.certPath}.enrol`,
    ca: `${paths.caCertPath}.enrol`,
    manager: `${managerFilePath(config.stateDir)}.enrol`,
  };
  try {
    const csrPem = await createKeyAndCsr(staged.key, config.hostId);
    const keyPem = await readFile(staged.key, 'utf8');
    const managerUrl = options.managerUrl ?? key.managerUrl;
    const result = await postEnrolment(key, managerUrl, {
      keyId: key.keyId,
      secret: key.secret,
      managementServerName: key.managementServerName,
      hostId: config.hostId,
      csrPem,
      replicationAddress: address,
      replicationPort: port,
    });
    checkResult(result, key, config.hostId, keyPem);
    const managerFile: ManagerFile = {
      format: 'secondsite-manager-1',
      hostId: config.hostId,
      managementServerName: result.managementServerName,
      managerUrl,
      managerCommonName: result.managerCommonName,
      siteCaFingerprint256: new X509Certificate(result.siteCaCertPem).fingerprint256,
      siteCaCertPem: result.siteCaCertPem,
      enrolledAt: new Date().toISOString(),
    };
    await writeSynced(storage, staged.cert, Buffer.from(result.certPem));
    await writeSynced(storage, staged.ca, Buffer.from(result.siteCaCertPem));
    await writeSynced(storage, staged.manager, Buffer.from(`${JSON.stringify(managerFile, null, 2)}\n`));
    await syncFile(storage, staged.key);
    await storage.rename(staged.key, paths.keyPath);
    await storage.rename(staged.cert, paths.certPath);
    await storage.rename(staged.ca, paths.caCertPath);
    await storage.rename(staged.manager, managerFilePath(config.stateDir));
    await storage.syncDir(pkiDir);
    await storage.syncDir(dirname(managerFilePath(config.stateDir)));
    return {
      hostId: config.hostId,
      managementServerName: result.managementServerName,
      managerUrl,
      replicationAddress: address,
      replicationPort: port,
      certPath: paths.certPath,
      certNotAfter: result.certNotAfter,
      siteCaFingerprint256: managerFile.siteCaFingerprint256,
    };
  } finally {
    for (const f of Object.values(staged)) await rm(f, { force: true });
  }
}

async function writeSynced(storage: Storage, path: string, data: Buffer): Promise<void> {
  const file = await storage.open(path, 'create');
  try {
    await file.truncate(0);
    await file.write(data, 0, data.length, 0);
    await file.datasync();
  } finally {
    await file.close();
  }
}

async function syncFile(storage: Storage, path: string): Promise<void> {
  const file = await storage.open(path, 'readwrite');
  try {
    await file.datasync();
  } finally {
    await file.close();
  }
}

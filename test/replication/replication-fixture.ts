/**
 * Shared setup for the replication tests: a CA with host identities (host-a primary, host-b replica,
 * host-c a valid but unauthorized host) plus a foreign CA, a receiver on loopback backed by
 * MemoryReplicaStore, senders, and seeded disk contents.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../../src/domain/clock.js';
import { Rng, seedFrom } from '../../src/domain/random.js';
import { initCa } from '../../src/pki/ca.js';
import { issueHostCert } from '../../src/pki/csr.js';
import { loadTlsIdentity } from '../../src/host/pki/tls-config.js';
import type { TlsIdentity } from '../../src/host/pki/tls-config.js';
import { AuthorizationList } from '../../src/host/replication/authorization-list.js';
import type { AuthorizationEntry } from '../../src/host/replication/authorization-list.js';
import { ReplicationReceiver } from '../../src/host/replication/replication-receiver.js';
import type { ReplicaStoreOpener } from '../../src/host/replication/replication-receiver.js';
import { ReplicationSender } from '../../src/host/replication/replication-sender.js';
import type { SenderPolicy } from '../../src/host/replication/replication-sender.js';
import { MemoryReplicaStore } from './memory-replica-store.js';

export const SEED = seedFrom(process.env.SECONDSITE_SEED, 20261122);

export const realClock: Clock = { wallMs: () => Date.now(), monotonicMs: () => performance.now() };

export interface Pki {
  dir: string;
  hostA: TlsIdentity;
  hostB: TlsIdentity;
  hostC: TlsIdentity;
  /** host-a's name, signed by another CA. */
  foreignA: TlsIdentity;
  cleanup(): Promise<void>;
}

export async function createPki(): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), 'secondsite-repl-pki-'));
  const caDir = join(dir, 'ca');
  const tlsDir = join(dir, 'tls');
  await initCa(caDir);
  for (const name of ['host-a', 'host-b', 'host-c']) await issueHostCert({ caDir, name, outDir: tlsDir });
  await initCa(join(dir, 'foreign-ca'), { name: 'someone else' });
  await issueHostCert({ caDir: join(dir, 'foreign-ca'), name: 'host-a', outDir: join(dir, 'foreign') });
  return {
    dir,
    hostA: await loadTlsIdentity(tlsDir, 'host-a'),
    hostB: await loadTlsIdentity(tlsDir, 'host-b'),
    hostC: await loadTlsIdentity(tlsDir, 'host-c'),
    foreignA: await loadTlsIdentity(join(dir, 'foreign'), 'host-a'),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export const DEFAULT_ENTRIES: AuthorizationEntry[] = [
  { primaryHostId: 'host-a', storageLocation: 'gold', trustGroup: 'tg1' },
];

export interface TestReceiver {
  receiver: ReplicationReceiver;
  port: number;
  stores: Map<string, MemoryReplicaStore>;
  opened: string[];
  events: Array<{ event: string; fields: Record<string, unknown> }>;
  stop(): Promise<void>;
}

export async function startReceiver(
  pki: Pki,
  opts: {
    entries?: AuthorizationEntry[];
    epoch?: number;
    frameTimeoutMs?: number;
    idleTimeoutMs?: number;
    /** Use this store (e.g. the real PointStore) instead of MemoryReplicaStore. */
    openStore?: ReplicaStoreOpener;
  } = {},
): Promise<TestReceiver> {
  const stores = new Map<string, MemoryReplicaStore>();
  const opened: string[] = [];
  const events: TestReceiver['events'] = [];
  const authorization = new AuthorizationList(opts.entries ?? DEFAULT_ENTRIES);
  const receiver = new ReplicationReceiver({
    tls: pki.hostB,
    port: 0,
    authorization: () => authorization,
    storageLocations: { gold: join(pki.dir, 'replica-gold'), silver: join(pki.dir, 'replica-silver') },
    frameTimeoutMs: opts.frameTimeoutMs ?? 5000,
    ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
    onEvent: (event, fields) => events.push({ event, fields }),
    openStore: (req) => {
      if (opts.openStore) {
        opened.push(`${req.relationshipId}@${req.storageLocation}`);
        return opts.openStore(req);
      }
      opened.push(`${req.relationshipId}@${req.storageLocation}`);
      let s = stores.get(req.relationshipId);
      if (!s) {
        s = new MemoryReplicaStore(req.relationshipId, opts.epoch ?? 1);
        stores.set(req.relationshipId, s);
      }
      return Promise.resolve(s);
    },
  });
  const { port } = await receiver.start();
  return { receiver, port, stores, opened, events, stop: () => receiver.stop() };
}

export function makeSender(
  id: TlsIdentity,
  port: number,
  opts: {
    relationshipId?: string;
    epoch?: number;
    storageLocation?: string;
    replicaHostId?: string;
    policy?: Partial<SenderPolicy>;
    sleep?: (ms: number) => Promise<void>;
  } = {},
): ReplicationSender {
  return new ReplicationSender({
    tls: id,
    replica: { host: '127.0.0.1', port, hostId: opts.replicaHostId ?? 'host-b' },
    relationship: {
      relationshipId: opts.relationshipId ?? 'vm-1',
      epoch: opts.epoch ?? 1,
      storageLocation: opts.storageLocation ?? 'gold',
    },
    policy: {
      backoff: { initialMs: 20, maxMs: 100 },
      frameTimeoutMs: 5000,
      connectTimeoutMs: 3000,
      ...opts.policy,
    },
    clock: realClock,
    rng: new Rng(SEED),
    ...(opts.sleep ? { sleep: opts.sleep } : {}),
  });
}

/** Disk content: 64 KiB blocks cycling random / zero / text / random (compressible about 1.3x). */
export function mixedDisk(sizeBytes: number, rng: Rng): Buffer {
  const buf = Buffer.alloc(sizeBytes);
  const text = Buffer.from('secondsite replicates virtual machine disks between two sites. '.repeat(64));
  for (let at = 0, i = 0; at < sizeBytes; at += 65536, i++) {
    const end = Math.min(sizeBytes, at + 65536);
    const kind = i % 4;
    if (kind === 0 || kind === 3) rng.fill(buf.subarray(at, end));
    else if (kind === 2)
      for (let p = at; p < end; p += text.length) text.copy(buf, p, 0, Math.min(text.length, end - p));
  }
  return buf;
}

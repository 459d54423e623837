/**
 * The replica host's replication endpoint: a TLS 1.3 server with mandatory client certificates. Per
 * connection: the handshake authenticates the peer against the site CA; the authorization list must
 * name the peer's host id before a single frame is read; HELLO's storage location must be allowed for
 * that host (SECONDSITE_ERR_PEER_NOT_AUTHORIZED otherwise, naming both) and is mapped to a local
 * directory by this host's config only. One live session per relationship: a new connection for the
 * same relationship replaces the old one (the old is closed and drained first), so a half-open
 * connection never blocks a resume.
 */
import { createServer } from 'node:tls';
import type { Server, TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { SecondsiteError } from '../../domain/errors.js';
import { newSessionContext } from '../../protocol/replication/frame-rules.js';
import type { MessageOf } from '../../protocol/replication/messages.js';
import { peerHostId, peerIssuerFingerprint, replicationServerOptions } from '../pki/tls-config.js';
import type { TlsIdentity } from '../pki/tls-config.js';
import type { ReplicaStore } from '../recovery-points/replica-store.js';
import { notAuthorized } from './authorization-list.js';
import type { AuthorizationList } from './authorization-list.js';
import { FrameConnection } from './frame-connection.js';
import { ReceiverSession } from './receiver-session.js';
import type { ReceiverCounters, ReceiverSessionDeps } from './receiver-session.js';

/** Opens the replica store of a relationship in a storage directory (wired to the recovery-point store). */
export type ReplicaStoreOpener = (req: {
  relationshipId: string;
  primaryHostId: string;
  storageLocation: string;
  /** The local directory the storage location maps to. */
  storageDir: string;
  trustGroup: string;
}) => Promise<ReplicaStore>;

export interface ReceiverConfig {
  readonly tls: TlsIdentity;
  /** TCP port; 0 picks a free one (see `start()`'s result). */
  readonly port: number;
  readonly host?: string;
  /** The authorization list in force (read at every connection and HELLO: it may change live). */
  readonly authorization: () => AuthorizationList;
  /** Storage location name -> local directory. */
  readonly storageLocations: Readonly<Record<string, string>>;
  readonly openStore: ReplicaStoreOpener;
  readonly frameTimeoutMs?: number;
  readonly handshakeTimeoutMs?: number;
  /** Idle time between cycles after which a connection is closed (default 120 s). */
  readonly idleTimeoutMs?: number;
  readonly maxConnections?: number;
  /**
   * Apply the relationship's retention (the HELLO's hours) in each commit, so the undo of a point it
   * drops is captured only where older points need it (recovery-points.md section 6.2). Default off.
   */
  readonly retentionAtCommit?: boolean;
  /** After every committed point (the host agent applies the relationship's retention). */
  readonly onPointCommitted?: ReceiverSessionDeps['onPointCommitted'];
  readonly onHello?: ReceiverSessionDeps['onHello'];
  /** Structured events (refusals, sessions, commits) for the host agent's log. */
  readonly onEvent?: (event: string, fields: Record<string, unknown>) => void;
  /**
   * The host peer API shares the port: a client that negotiates ALPN `alpn` (over the same mutual TLS)
   * is handed to `onConnection` instead of the replication protocol (docs/design/failover.md section 8).
   */
  readonly peer?: {
    readonly alpn: string;
    readonly onConnection: (socket: TLSSocket) => void;
    /** Admits a peer-API caller the authorization list does not name (this host's manager). */
    readonly admit?: (socket: TLSSocket) => boolean;
  };
}

interface Binding {
  store: ReplicaStore;
  storageLocation: string;
  trustGroup: string;
}

export class ReplicationReceiver {
  private server: Server | null = null;
  private readonly bindings = new Map<string, Binding>();
  private readonly opening = new Map<string, Promise<Binding>>();
  private readonly active = new Map<
    string,
    { session: ReceiverSession; conn: FrameConnection; done: Promise<void> }
  >();
  private readonly sockets = new Set<TLSSocket>();
  private stopping = false;
  readonly counters: ReceiverCounters & { handshakeFailures: number } = {
    sessionsAccepted: 0,
    sessionsRefused: 0,
    dataFramesStaged: 0,
    dataBytesStaged: 0,
    zeroBytesStaged: 0,
    pointsCommitted: 0,
    handshakeFailures: 0,
  };

  constructor(private readonly config: ReceiverConfig) {}

  private event(name: string, fields: Record<string, unknown>): void {
    this.config.onEvent?.(name, fields);
  }

  /** Listens; resolves with the bound port. */
  async start(): Promise<{ port: number }> {
    const peer = this.config.peer;
    const server = createServer(
      { ...replicationServerOptions(this.config.tls), ...(peer ? { ALPNProtocols: [peer.alpn] } : {}) },
      (socket) => {
        if (peer && socket.alpnProtocol === peer.alpn) {
          // the peer API is for hosts this replica works with: the same authorization list
          const who = peerHostId(socket);
          const admitted =
            (who !== null && this.config.authorization().allowsHost(who, peerIssuerFingerprint(socket))) ||
            peer.admit?.(socket) === true;
          if (!admitted) {
            this.counters.sessionsRefused++;
            this.event('replication:receiver:peer-refused', { peer: who, api: 'peer' });
            socket.destroy();
            return;
          }
          this.sockets.add(socket);
          socket.on('close', () => this.sockets.delete(socket));
          peer.onConnection(socket);
        } else this.onSecureConnection(socket);
      },
    );
    server.maxConnections = this.config.maxConnections ?? 64;
    server.on('tlsClientError', (e) => {
      this.counters.handshakeFailures++;
      this.event('replication:receiver:handshake-refused', { reason: e.message });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.config.port, this.config.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return { port: (server.address() as AddressInfo).port };
  }

  /** Stops listening, closes every connection, waits for sessions, closes the stores. */
  /**
   * New TLS trust or identity for connections from now on (a managed trust group was added or
   * removed, or the host got a new certificate); live sessions keep theirs.
   */
  updateTls(tls: TlsIdentity): void {
    this.server?.setSecureContext(replicationServerOptions(tls));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const server = this.server;
    this.server = null;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    for (const s of this.sockets) s.destroy();
    await Promise.allSettled([...this.active.values()].map((a) => a.done));
    await closed;
    for (const b of this.bindings.values()) await b.store.close();
    this.bindings.clear();
  }

  /** Stores opened so far (for the host agent's status and tests). */
  storeOf(relationshipId: string): ReplicaStore | undefined {
    return this.bindings.get(relationshipId)?.store;
  }

  private onSecureConnection(socket: TLSSocket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.setNoDelay(true);
    const conn = new FrameConnection(socket, newSessionContext('sender'), {
      relationshipKey: Buffer.alloc(16),
      epoch: 0,
    });
    const peer = peerHostId(socket);
    const issuer = peerIssuerFingerprint(socket);
    if (peer === null || !this.config.authorization().allowsHost(peer, issuer)) {
      // Refused before reading a single frame.
      this.counters.sessionsRefused++;
      const err =
        peer === null
          ? new SecondsiteError(
              'SECONDSITE_ERR_UNAUTHORIZED',
              'the peer certificate names no host id (CN + DNS SAN)',
            )
          : notAuthorized(peer, null);
      this.event('replication:receiver:peer-refused', { peer, code: err.code });
      void conn.refuse(err);
      return;
    }
    let session: ReceiverSession | null = null;
    let aborted = false;
    session = new ReceiverSession(conn, peer, {
      replicaHostId: this.config.tls.hostId,
      frameTimeoutMs: this.config.frameTimeoutMs ?? 30_000,
      handshakeTimeoutMs: this.config.handshakeTimeoutMs ?? 10_000,
      idleTimeoutMs: this.config.idleTimeoutMs ?? 120_000,
      counters: this.counters,
      aborted: () => aborted || this.stopping,
      retentionAtCommit: this.config.retentionAtCommit ?? false,
      ...(this.config.onPointCommitted ? { onPointCommitted: this.config.onPointCommitted } : {}),
      ...(this.config.onHello ? { onHello: this.config.onHello } : {}),
      openStore: async (hello, peerHost) => {
        const binding = await this.bind(hello, peerHost, issuer);
        // newest connection wins: close the old session of this relationship and wait for it
        const old = this.active.get(hello.relationshipId);
        if (old && old.session !== session) {
          old.conn.destroy();
          await old.done.catch(() => {});
        }
        this.active.set(hello.relationshipId, { session: session as ReceiverSession, conn, done });
        return binding.store;
      },
    });
    const done = session
      .run()
      .catch(async (e: unknown) => {
        const code = e instanceof SecondsiteError ? e.code : 'SECONDSITE_ERR_INTERNAL';
        if (code === 'SECONDSITE_ERR_PEER_NOT_AUTHORIZED' || code === 'SECONDSITE_ERR_UNAUTHORIZED') {
          this.counters.sessionsRefused++;
        }
        this.event('replication:receiver:session-failed', {
          peer,
          relationshipId: session?.relationshipId ?? null,
          code,
          message: e instanceof Error ? e.message : String(e),
        });
        await conn.refuse(e);
      })
      .finally(() => {
        aborted = true;
        conn.close();
        const rel = session?.relationshipId;
        if (rel && this.active.get(rel)?.session === session) this.active.delete(rel);
      });
  }

  /** Authorizes (host, storage location) and binds the relationship to its location and trust group. */
  private async bind(
    hello: MessageOf<'hello'>,
    peerHost: string,
    issuerFingerprint: string | null,
  ): Promise<Binding> {
    const entry = this.config.authorization().authorize(peerHost, hello.storageLocation, issuerFingerprint);
    const storageDir = this.config.storageLocations[entry.storageLocation];
    if (
      storageDir === undefined ||
      !Object.prototype.hasOwnProperty.call(this.config.storageLocations, entry.storageLocation)
    ) {
      throw new SecondsiteError(
        'SECONDSITE_ERR_INVALID_STATE',
        `storage location '${entry.storageLocation}' is authorized but not configured on this replica host: map it to a directory`,
        { storageLocation: entry.storageLocation },
      );
    }
    const check = (b: Binding): Binding => {
      if (b.storageLocation !== entry.storageLocation || b.trustGroup !== entry.trustGroup) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_PEER_NOT_AUTHORIZED',
          `relationship '${hello.relationshipId}' lives in storage location '${b.storageLocation}' (trust group '${b.trustGroup}'); primary host '${peerHost}' asked for '${entry.storageLocation}' (trust group '${entry.trustGroup}')`,
          {
            relationshipId: hello.relationshipId,
            primaryHostId: peerHost,
            storageLocation: entry.storageLocation,
          },
        );
      }
      return b;
    };
    const existing = this.bindings.get(hello.relationshipId);
    if (existing && existing.store.state === 'open') return check(existing);
    if (existing) {
      // The store failed inside a commit (reopening recovers it) or was closed (promoted by a failover
      // commit, or seeded anew for reverse replication): forget it; the opener decides.
      this.bindings.delete(hello.relationshipId);
      this.event('replication:receiver:store-reopen', { relationshipId: hello.relationshipId });
    }
    let pending = this.opening.get(hello.relationshipId);
    if (!pending) {
      pending = this.config
        .openStore({
          relationshipId: hello.relationshipId,
          primaryHostId: peerHost,
          storageLocation: entry.storageLocation,
          storageDir,
          trustGroup: entry.trustGroup,
        })
        .then((store) => {
          const b = { store, storageLocation: entry.storageLocation, trustGroup: entry.trustGroup };
          this.bindings.set(hello.relationshipId, b);
          return b;
        })
        .finally(() => this.opening.delete(hello.relationshipId));
      this.opening.set(hello.relationshipId, pending);
    }
    return check(await pending);
  }
}

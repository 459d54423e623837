/**
 * Runs the NBD handshake on one accepted socket: greeting, client flags, then options fed through the
 * pure state machine (src/protocol/nbd/nbd-option.machine.ts) until it says `transmission` or `close`.
 * This file owns only the effects: reading bounded bytes, writing replies, the STARTTLS upgrade. Every
 * length is checked before it is read (docs/design/nbd-server.md invariant 2). The caller owns the
 * deadline: it calls `abort()` when the handshake timer fires.
 */
import type { Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import {
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_MAX_DISCARDABLE_OPTION_BYTES,
  NBD_MAX_OPTION_BYTES,
  NBD_OPTION_HEADER_BYTES,
} from '../../protocol/nbd/nbd-constants.js';
import { decodeOptionHeader, encodeGreeting } from '../../protocol/nbd/nbd-handshake.codec.js';
import {
  acceptClientFlags,
  afterTlsHandshake,
  oversizedOptionReply,
  stepOption,
  type ExportCatalog,
  type Session,
  type TlsMode,
} from '../../protocol/nbd/nbd-option.machine.js';
import { ExactReader } from '../../protocol/nbd/exact-reader.js';

export interface HandshakeConfig {
  readonly tlsMode: TlsMode;
  /** PEM server certificate, key and client CA; required when tlsMode is 'forced'. */
  readonly tls?: {
    readonly cert: string | Buffer;
    readonly key: string | Buffer;
    readonly ca: string | Buffer;
  };

  readonly catalog: ExportCatalog;
}

export type HandshakeOutcome =
  | { readonly ok: true; readonly socket: Socket; readonly session: Session; readonly leftover: Buffer }
  | { readonly ok: false; readonly reason: string };

export class HandshakeRun {
  private socket: Socket;
  private reader: ExactReader;
  private aborted: string | null = null;

  constructor(
    socket: Socket,
    private readonly config: HandshakeConfig,
  ) {
    this.socket = socket;
    this.reader = new ExactReader(socket, 'the client');
  }

  /** The socket currently in use (a TLSSocket after STARTTLS). */
  get currentSocket(): Socket {
    return this.socket;
  }

  /** Ends the handshake (timeout or server shutdown): the pending read fails and the socket is destroyed. */
  abort(reason: string): void {
    this.aborted = reason;
    this.reader.fail(reason);
    this.socket.destroy();
  }

  async run(): Promise<HandshakeOutcome> {
    try {
      return await this.negotiate();
    } catch (e) {
      this.reader.detach();
      this.socket.destroy();
      return { ok: false, reason: this.aborted ?? (e instanceof Error ? e.message : String(e)) };
    }
  }

  private async negotiate(): Promise<HandshakeOutcome> {
    await writeAll(this.socket, encodeGreeting(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES));
    const flags = (await this.reader.readExact(4)).readUInt32BE(0);
    const accepted = acceptClientFlags(flags, this.config.tlsMode);
    if (!accepted.ok) return this.close(accepted.reason);
    let session = accepted.session;
    for (;;) {
      const header = decodeOptionHeader(await this.reader.readExact(NBD_OPTION_HEADER_BYTES));
      if (!header.magicOk) return this.close('bad option magic (a request before NBD_OPT_GO?)');
      if (header.lengthBytes > NBD_MAX_DISCARDABLE_OPTION_BYTES)
        return this.close(
          `option ${header.option} with ${header.lengthBytes} bytes of data: hard disconnect`,
        );
      if (header.lengthBytes > NBD_MAX_OPTION_BYTES) {
        await this.reader.discard(header.lengthBytes);
        await writeAll(this.socket, oversizedOptionReply(session, header.option, header.lengthBytes));
        continue;
      }
      const payload = await this.reader.readExact(header.lengthBytes);
      const step = stepOption(session, header.option, payload, this.config.catalog);
      session = step.session;
      // Before acknowledging STARTTLS, stop reading plaintext: the client's TLS hello (sent after it
      // sees the ACK) must stay in the kernel for the TLS layer, and nothing read later is NBD data.
      if (step.effect === 'starttls') this.socket.pause();
      if (step.replies.length > 0) await writeAll(this.socket, Buffer.concat(step.replies));
      switch (step.effect) {
        case 'continue':
          break;
        case 'close':
          return this.close(step.reason ?? 'closed by the option machine', true);
        case 'transmission':
          return { ok: true, socket: this.socket, session, leftover: this.reader.detach() };
        case 'starttls':
          await this.startTls();
          session = afterTlsHandshake(session);
          break;
      }
    }
  }

  /**
   * Upgrades to TLS through a non-listening tls.Server fed with the raw socket ('connection' event):
   * only a tls.Server-owned TLSSocket verifies the client certificate against the CA (a hand-made
   * server TLSSocket never sets `authorized`). Unverified clients are destroyed by Node before
   * 'secureConnection', which we see as the socket closing.
   */
  private async startTls(): Promise<void> {
    if (this.reader.bufferedBytes > 0)
      throw new Error('bytes were sent after NBD_OPT_STARTTLS before TLS started');
    const tls = this.config.tls;
    if (!tls) throw new Error('STARTTLS accepted without TLS material (bug)');
    this.reader.detach();
    const raw = this.socket;
    const tlsServer = createTlsServer({
      cert: tls.cert,
      key: tls.key,
      ca: tls.ca,
      minVersion: 'TLSv1.3',
      requestCert: true,
      rejectUnauthorized: true,
    });
    const secured = new Promise<TLSSocket>((resolve, reject) => {
      const onClose = (): void =>
        reject(new Error('TLS handshake failed or the client certificate was refused'));
      raw.once('close', onClose);
      tlsServer.once('secureConnection', (s: TLSSocket) => {
        raw.off('close', onClose);
        if (s.authorized) resolve(s);
        else reject(new Error(`client certificate refused: ${String(s.authorizationError)}`));
      });
      tlsServer.once('tlsClientError', (e: Error) => {
        raw.off('close', onClose);
        reject(new Error(`TLS handshake failed: ${e.message}`));
      });
    });
    if (this.aborted) throw new Error(this.aborted);
    tlsServer.emit('connection', raw);
    const tlsSocket = await secured;
    tlsSocket.on('error', () => undefined); // later errors end the session through the reader
    this.socket = tlsSocket;
    this.reader = new ExactReader(tlsSocket, 'the client');
  }

  private close(reason: string, graceful = false): HandshakeOutcome {
    this.reader.detach();
    const socket = this.socket;
    if (graceful) socket.end(() => socket.destroy());
    else socket.destroy();
    return { ok: false, reason };
  }
}

function writeAll(socket: Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) {
      reject(new Error('the connection is closed'));
      return;
    }
    socket.write(data, (e) => (e ? reject(e) : resolve()));
  });
}

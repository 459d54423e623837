/**
 * Client side of the NBD fixed-newstyle handshake: greeting, client flags, STARTTLS first when TLS is
 * configured (and no fallback to plaintext if the server refuses), STRUCTURED_REPLY, SET_META_CONTEXT
 * base:allocation, then GO with a BLOCK_SIZE info request. Every reply length is bounded before it is
 * read; any deviation from the spec is SECONDSITE_ERR_PROTOCOL.
 */
import { connect as tlsConnect } from 'node:tls';
import type { Socket } from 'node:net';
import { SecondsiteError } from '../domain/errors.js';
import {
  BASE_ALLOCATION,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_IHAVEOPT,
  NBD_MAGIC,
  NBD_OPTION_REPLY_HEADER_BYTES,
  NbdInfo,
  NbdOpt,
  NbdRep,
  isOptionReplyError,
} from '../protocol/nbd/nbd-constants.js';
import {
  decodeOptionReplyHeader,
  encodeGoPayload,
  encodeMetaContextPayload,
  encodeOptionHeader,
} from '../protocol/nbd/nbd-handshake.codec.js';
import { ExactReader } from '../protocol/nbd/exact-reader.js';

const MAX_OPTION_REPLY_BYTES = 64 * 1024;

export interface ClientTlsOptions {
  readonly ca: string | Buffer;
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** Host name to verify in the server certificate (default 'localhost'). */
  readonly servername?: string;
}

export interface HandshakeRequest {
  readonly exportName: string;
  readonly tls?: ClientTlsOptions;
  readonly structuredReplies: boolean;
  readonly blockStatus: boolean;
}

export interface NegotiatedExport {
  readonly socket: Socket;
  readonly leftover: Buffer;
  readonly sizeBytes: number;
  readonly transmissionFlags: number;
  readonly structuredReplies: boolean;
  /** Context id for base:allocation, or null when not selected. */
  readonly baseAllocationId: number | null;
  readonly blockSizes: { minBytes: number; preferredBytes: number; maxBytes: number } | null;
}

const protocolError = (message: string): SecondsiteError =>
  new SecondsiteError('SECONDSITE_ERR_PROTOCOL', `NBD server broke the handshake: ${message}`);

interface OptionReply {
  replyType: number;
  data: Buffer;
}

async function sendOption(socket: Socket, option: number, payload: Buffer): Promise<void> {
  await new Promise<void>((resolve, reject) =>
    socket.write(encodeOptionHeader(option, payload), (e) => (e ? reject(e) : resolve())),
  );
}

async function readReply(reader: ExactReader, option: number): Promise<OptionReply> {
  const h = decodeOptionReplyHeader(await reader.readExact(NBD_OPTION_REPLY_HEADER_BYTES));
  if (!h.magicOk) throw protocolError('bad option reply magic');
  if (h.option !== option) throw protocolError(`reply for option ${h.option}, expected ${option}`);
  if (h.lengthBytes > MAX_OPTION_REPLY_BYTES) throw protocolError(`option reply of ${h.lengthBytes} bytes`);
  return { replyType: h.replyType, data: await reader.readExact(h.lengthBytes) };
}

function replyFailure(option: string, r: OptionReply, exportName: string): SecondsiteError {
  const text = r.data.toString('utf8');
  if (r.replyType === NbdRep.ERR_UNKNOWN)
    return new SecondsiteError(
      'SECONDSITE_ERR_NOT_FOUND',
      `NBD export '${exportName}' does not exist: ${text}`,
      {
        exportName,
      },
    );
  if (r.replyType === NbdRep.ERR_TLS_REQD)
    return new SecondsiteError(
      'SECONDSITE_ERR_TLS_REQUIRED',
      `the NBD server requires TLS; pass TLS options (${text})`,
    );
  return new SecondsiteError(
    'SECONDSITE_ERR_PROTOCOL',
    `NBD ${option} refused (reply 0x${r.replyType.toString(16)}): ${text}`,
    {
      replyType: r.replyType,
    },
  );
}

export async function negotiate(raw: Socket, req: HandshakeRequest): Promise<NegotiatedExport> {
  let socket: Socket = raw;
  let reader = new ExactReader(socket, 'the NBD server');
  try {
    const greeting = await reader.readExact(18);
    if (greeting.readBigUInt64BE(0) !== NBD_MAGIC || greeting.readBigUInt64BE(8) !== NBD_IHAVEOPT)
      throw protocolError('not an NBD newstyle server (bad greeting magic)');
    const serverFlags = greeting.readUInt16BE(16);
    if ((serverFlags & NBD_FLAG_FIXED_NEWSTYLE) === 0)
      throw protocolError('the server does not speak fixed newstyle');
    const noZeroes = (serverFlags & NBD_FLAG_NO_ZEROES) !== 0;
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(NBD_FLAG_C_FIXED_NEWSTYLE | (noZeroes ? NBD_FLAG_C_NO_ZEROES : 0), 0);
    socket.write(flags);

    if (req.tls) {
      await sendOption(socket, NbdOpt.STARTTLS, Buffer.alloc(0));
      const r = await readReply(reader, NbdOpt.STARTTLS);
      if (r.replyType !== NbdRep.ACK)
        throw new SecondsiteError(
          'SECONDSITE_ERR_TLS_REQUIRED',
          'the NBD server refused STARTTLS; this client does not fall back to plaintext',
        );
      reader.detach();
      raw.on('error', () => undefined); // the TLS socket reports failures
      const tlsSocket = tlsConnect({
        socket,
        ca: req.tls.ca,
        cert: req.tls.cert,
        key: req.tls.key,
        servername: req.tls.servername ?? 'localhost',
        minVersion: 'TLSv1.3',
      });
      socket = tlsSocket;
      reader = new ExactReader(socket, 'the NBD server');
      await new Promise<void>((resolve, reject) => {
        tlsSocket.once('secureConnect', resolve);
        tlsSocket.once('error', reject);
      });
    }

    let structured = false;
    if (req.structuredReplies) {
      await sendOption(socket, NbdOpt.STRUCTURED_REPLY, Buffer.alloc(0));
      const r = await readReply(reader, NbdOpt.STRUCTURED_REPLY);
      if (r.replyType === NbdRep.ACK) structured = true;
      else if (!isOptionReplyError(r.replyType)) throw protocolError('unexpected reply to STRUCTURED_REPLY');
    }

    let baseAllocationId: number | null = null;
    if (structured && req.blockStatus) {
      await sendOption(
        socket,
        NbdOpt.SET_META_CONTEXT,
        encodeMetaContextPayload(req.exportName, [BASE_ALLOCATION]),
      );
      for (;;) {
        const r = await readReply(reader, NbdOpt.SET_META_CONTEXT);
        if (r.replyType === NbdRep.ACK) break;
        if (r.replyType === NbdRep.META_CONTEXT) {
          if (r.data.length < 4) throw protocolError('short META_CONTEXT reply');
          if (r.data.subarray(4).toString('utf8') === BASE_ALLOCATION)
            baseAllocationId = r.data.readUInt32BE(0);
          continue;
        }
        if (isOptionReplyError(r.replyType)) throw replyFailure('SET_META_CONTEXT', r, req.exportName);
        throw protocolError(`unexpected reply ${r.replyType} to SET_META_CONTEXT`);
      }
    }

    await sendOption(socket, NbdOpt.GO, encodeGoPayload(req.exportName, [NbdInfo.BLOCK_SIZE]));
    let sizeBytes: number | null = null;
    let transmissionFlags = 0;
    let blockSizes: NegotiatedExport['blockSizes'] = null;
    for (;;) {
      const r = await readReply(reader, NbdOpt.GO);
      if (r.replyType === NbdRep.ACK) break;
      if (isOptionReplyError(r.replyType)) throw replyFailure('GO', r, req.exportName);
      if (r.replyType !== NbdRep.INFO || r.data.length < 2)
        throw protocolError(`unexpected reply ${r.replyType} to GO`);
      const type = r.data.readUInt16BE(0);
      if (type === NbdInfo.EXPORT) {
        if (r.data.length !== 12) throw protocolError('NBD_INFO_EXPORT of the wrong length');
        const size = r.data.readBigUInt64BE(2);
        if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw protocolError(`export size ${size} is too large`);
        sizeBytes = Number(size);
        transmissionFlags = r.data.readUInt16BE(10);
      } else if (type === NbdInfo.BLOCK_SIZE) {
        if (r.data.length !== 14) throw protocolError('NBD_INFO_BLOCK_SIZE of the wrong length');
        blockSizes = {
          minBytes: r.data.readUInt32BE(2),
          preferredBytes: r.data.readUInt32BE(6),
          maxBytes: r.data.readUInt32BE(10),
        };
      }
    }
    if (sizeBytes === null) throw protocolError('GO succeeded without NBD_INFO_EXPORT');
    return {
      socket,
      leftover: reader.detach(),
      sizeBytes,
      transmissionFlags,
      structuredReplies: structured,
      baseAllocationId,
      blockSizes,
    };
  } catch (e) {
    reader.detach();
    socket.destroy();
    throw e;
  }
}

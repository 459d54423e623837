/**
 * The NBD option-haggling state machine, declared as data (libnbd's generator style).
 *
 * States (docs/design/nbd-server.md section 2):
 *   - needTls      FORCEDTLS listener before STARTTLS: only STARTTLS and ABORT are served; EXPORT_NAME
 *                  closes (it cannot be errored); every other option gets NBD_REP_ERR_TLS_REQD.
 *   - options      full option set (after TLS, or on a NOTLS Unix listener).
 *   - transmission haggling is over (GO or EXPORT_NAME succeeded).
 *   - closed       the runner must close the socket.
 * `OPTION_TABLE` lists, per haggling state, which option goes to which handler; the fallback handles the
 * rest. `stepOption` is pure: the runner performs the returned effect and writes `replies` in order.
 * Invariant: STARTTLS resets everything negotiated before it (`afterTlsHandshake`), CVE-2021-3716.
 */
import type { Buffer } from 'node:buffer';
import {
  BASE_ALLOCATION,
  BASE_ALLOCATION_CONTEXT_ID,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_CAN_MULTI_CONN,
  NBD_FLAG_HAS_FLAGS,
  NBD_FLAG_READ_ONLY,
  NBD_FLAG_SEND_DF,
  NBD_FLAG_SEND_FLUSH,
  NBD_FLAG_SEND_FUA,
  NBD_FLAG_SEND_TRIM,
  NBD_FLAG_SEND_WRITE_ZEROES,
  NbdInfo,
  NbdOpt,
  NbdRep,
  type NbdOptName,
} from './nbd-constants.js';
import {
  decodeExportNamePayload,
  decodeGoPayload,
  decodeMetaContextPayload,
  encodeErrorReply,
  encodeExportNameReply,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoString,
  encodeMetaContextReply,
  encodeOptionReply,
  encodeServerReply,
} from './nbd-handshake.codec.js';

export type TlsMode = 'none' | 'forced';
export type HaggleState = 'needTls' | 'options';
export type SessionState = HaggleState | 'transmission' | 'closed';

/** What the server knows about one export, for haggling (no I/O). */
export interface ExportInfo {
  readonly name: string;
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  readonly description?: string;
  /** Advertise NBD_FLAG_CAN_MULTI_CONN (docs/design/nbd-server.md section 5). */
  readonly multiConn: boolean;
}

export interface ExportCatalog {
  lookup(name: string): ExportInfo | undefined;
  names(): readonly string[];
}

export interface Session {
  readonly state: SessionState;
  readonly tlsMode: TlsMode;
  readonly tls: boolean;
  readonly noZeroes: boolean;
  readonly structuredReplies: boolean;
  /** Selected meta contexts and the export they were selected for. */
  readonly metaContext: { readonly exportName: string; readonly ids: readonly number[] } | null;
  /** Set once transmission is entered. */
  readonly export: ExportInfo | null;
}

export type Effect = 'continue' | 'starttls' | 'transmission' | 'close';

export interface OptionStep {
  readonly session: Session;
  readonly replies: readonly Buffer[];
  readonly effect: Effect;
  /** Why the session closes, for the log. */
  readonly reason?: string;
}

/** Accepts the client flags that follow the greeting, or says why the connection must close. */
export function acceptClientFlags(
  clientFlags: number,
  tlsMode: TlsMode,
): { ok: true; session: Session } | { ok: false; reason: string } {
  const known = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES;
  if ((clientFlags & ~known) !== 0)
    return { ok: false, reason: `unknown client flags 0x${clientFlags.toString(16)}` };
  if ((clientFlags & NBD_FLAG_C_FIXED_NEWSTYLE) === 0)
    return { ok: false, reason: 'client does not speak fixed newstyle negotiation' };
  return {
    ok: true,
    session: {
      state: tlsMode === 'forced' ? 'needTls' : 'options',
      tlsMode,
      tls: false,
      noZeroes: (clientFlags & NBD_FLAG_C_NO_ZEROES) !== 0,
      structuredReplies: false,
      metaContext: null,
      export: null,
    },
  };
}

/** After a successful TLS handshake: everything negotiated before is discarded (CVE-2021-3716). */
export function afterTlsHandshake(s: Session): Session {
  return { ...s, state: 'options', tls: true, structuredReplies: false, metaContext: null, export: null };
}

/** Transmission flags for an export in this session. */
export function transmissionFlags(exp: ExportInfo, s: Session): number {
  let f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM;
  f |= NBD_FLAG_SEND_WRITE_ZEROES;
  if (exp.readOnly) f |= NBD_FLAG_READ_ONLY;
  if (s.structuredReplies) f |= NBD_FLAG_SEND_DF;
  if (exp.multiConn) f |= NBD_FLAG_CAN_MULTI_CONN;
  return f;
}

type Handler = (s: Session, option: number, payload: Buffer, catalog: ExportCatalog) => OptionStep;

const keep = (s: Session, replies: Buffer[]): OptionStep => ({ session: s, replies, effect: 'continue' });
const fail = (s: Session, option: number, rep: number, msg: string): OptionStep =>
  keep(s, [encodeErrorReply(option, rep, msg)]);
const close = (s: Session, reason: string, replies: Buffer[] = []): OptionStep => ({
  session: { ...s, state: 'closed' },
  replies,
  effect: 'close',
  reason,
});

function infoOrGo(s: Session, option: number, payload: Buffer, catalog: ExportCatalog): OptionStep {
  const req = decodeGoPayload(payload);
  if (!req.ok) return fail(s, option, NbdRep.ERR_INVALID, req.reason);
  const exp = catalog.lookup(req.value.exportName);
  if (!exp) return fail(s, option, NbdRep.ERR_UNKNOWN, `no export named '${req.value.exportName}'`);
  const isGo = option === NbdOpt.GO;
  const metaContext = isGo && s.metaContext && s.metaContext.exportName !== exp.name ? null : s.metaContext;
  const next: Session = isGo ? { ...s, metaContext, state: 'transmission', export: exp } : s;
  const replies: Buffer[] = [];
  for (const t of req.value.infoRequests) {
    if (t === NbdInfo.NAME) replies.push(encodeInfoString(option, NbdInfo.NAME, exp.name));
    if (t === NbdInfo.DESCRIPTION && exp.description !== undefined)
      replies.push(encodeInfoString(option, NbdInfo.DESCRIPTION, exp.description));
  }
  replies.push(encodeInfoBlockSize(option));
  replies.push(encodeInfoExport(option, exp.sizeBytes, transmissionFlags(exp, next)));
  replies.push(encodeOptionReply(option, NbdRep.ACK));
  return { session: next, replies, effect: isGo ? 'transmission' : 'continue' };
}

function metaContext(s: Session, option: number, payload: Buffer, catalog: ExportCatalog): OptionStep {
  if (!s.structuredReplies)
    return fail(s, option, NbdRep.ERR_INVALID, 'negotiate NBD_OPT_STRUCTURED_REPLY before meta contexts');
  const req = decodeMetaContextPayload(payload);
  if (!req.ok) return fail(s, option, NbdRep.ERR_INVALID, req.reason);
  const exp = catalog.lookup(req.value.exportName);
  if (!exp) return fail(s, option, NbdRep.ERR_UNKNOWN, `no export named '${req.value.exportName}'`);
  const isList = option === NbdOpt.LIST_META_CONTEXT;
  const matches = isList
    ? req.value.queries.length === 0 || req.value.queries.some((q) => q === 'base:' || q === BASE_ALLOCATION)
    : req.value.queries.includes(BASE_ALLOCATION);
  const replies: Buffer[] = [];
  if (matches)
    replies.push(encodeMetaContextReply(option, isList ? 0 : BASE_ALLOCATION_CONTEXT_ID, BASE_ALLOCATION));
  replies.push(encodeOptionReply(option, NbdRep.ACK));
  if (isList) return keep(s, replies);
  const ids = matches ? [BASE_ALLOCATION_CONTEXT_ID] : [];
  return keep({ ...s, metaContext: { exportName: exp.name, ids } }, replies);
}

const HANDLERS = {
  go: infoOrGo,
  info: infoOrGo,
  metaContext,
  list: (s, option, payload, catalog) => {
    if (payload.length !== 0) return fail(s, option, NbdRep.ERR_INVALID, 'NBD_OPT_LIST takes no data');
    const replies = catalog.names().map((n) => encodeServerReply(option, n));
    return keep(s, [...replies, encodeOptionReply(option, NbdRep.ACK)]);
  },
  structuredReply: (s, option, payload) => {
    if (payload.length !== 0)
      return fail(s, option, NbdRep.ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
    return keep({ ...s, structuredReplies: true }, [encodeOptionReply(option, NbdRep.ACK)]);
  },
  exportName: (s, _option, payload, catalog) => {
    const name = decodeExportNamePayload(payload);
    if (!name.ok) return close(s, `NBD_OPT_EXPORT_NAME: ${name.reason}`);
    const exp = catalog.lookup(name.value);
    if (!exp) return close(s, `NBD_OPT_EXPORT_NAME: no export named '${name.value}'`);
    const next: Session = { ...s, state: 'transmission', export: exp, metaContext: null };
    return {
      session: next,
      replies: [encodeExportNameReply(exp.sizeBytes, transmissionFlags(exp, next), s.noZeroes)],
      effect: 'transmission',
    };
  },
  exportNameNeedsTls: (s) => close(s, 'NBD_OPT_EXPORT_NAME before STARTTLS on a TLS-only listener'),
  abort: (s, option) => close(s, 'client sent NBD_OPT_ABORT', [encodeOptionReply(option, NbdRep.ACK)]),
  startTls: (s, option, payload) => {
    if (payload.length !== 0) return fail(s, option, NbdRep.ERR_INVALID, 'NBD_OPT_STARTTLS takes no data');
    return { session: s, replies: [encodeOptionReply(option, NbdRep.ACK)], effect: 'starttls' };
  },
  startTlsRefused: (s, option) =>
    s.tls
      ? fail(s, option, NbdRep.ERR_INVALID, 'TLS is already running')
      : fail(s, option, NbdRep.ERR_POLICY, 'this listener does not offer TLS (local Unix socket)'),
  tlsRequired: (s, option) =>
    fail(s, option, NbdRep.ERR_TLS_REQD, 'TLS is required: send NBD_OPT_STARTTLS first'),
  unsupported: (s, option) => fail(s, option, NbdRep.ERR_UNSUP, `option ${option} is not supported`),
} satisfies Record<string, Handler>;

export type HandlerName = keyof typeof HANDLERS;

/** The state table: per haggling state, the options it serves and the fallback for all others. */
export const OPTION_TABLE: Readonly<
  Record<HaggleState, { accepts: Partial<Record<NbdOptName, HandlerName>>; otherwise: HandlerName }>
> = {
  needTls: {
    accepts: { STARTTLS: 'startTls', ABORT: 'abort', EXPORT_NAME: 'exportNameNeedsTls' },
    otherwise: 'tlsRequired',
  },
  options: {
    accepts: {
      GO: 'go',
      INFO: 'info',
      LIST: 'list',
      ABORT: 'abort',
      EXPORT_NAME: 'exportName',
      STRUCTURED_REPLY: 'structuredReply',
      STARTTLS: 'startTlsRefused',
      LIST_META_CONTEXT: 'metaContext',
      SET_META_CONTEXT: 'metaContext',
    },
    otherwise: 'unsupported',
  },
};

const OPT_NAMES = new Map<number, NbdOptName>(
  (Object.entries(NbdOpt) as [NbdOptName, number][]).map(([name, code]) => [code, name]),
);

/** Which handler the table picks for `option` in `state`. */
export function handlerFor(state: HaggleState, option: number): HandlerName {
  const row = OPTION_TABLE[state];
  const name = OPT_NAMES.get(option);
  return (name !== undefined ? row.accepts[name] : undefined) ?? row.otherwise;
}

/** One option: the session must be in a haggling state (needTls or options). */
export function stepOption(s: Session, option: number, payload: Buffer, catalog: ExportCatalog): OptionStep {
  if (s.state !== 'needTls' && s.state !== 'options') return close(s, `option ${option} in state ${s.state}`);
  return HANDLERS[handlerFor(s.state, option)](s, option, payload, catalog);
}

/** Reply for an option whose payload exceeded the parse cap but was discarded. */
export function oversizedOptionReply(s: Session, option: number, lengthBytes: number): Buffer {
  return s.state === 'needTls'
    ? encodeErrorReply(option, NbdRep.ERR_TLS_REQD, 'TLS is required: send NBD_OPT_STARTTLS first')
    : encodeErrorReply(option, NbdRep.ERR_TOO_BIG, `option data of ${lengthBytes} bytes is over the limit`);
}

/**
 * Entry point of the guest VM process: `node --import tsx src/guest/app/guest-main.ts --config <file>`.
 *
 * stdout carries one JSON event per line, for parents:
 *   {"event":"ready", guestId, pid, bootSeq, incarnation, listen:[{host,port}], agentSocket}
 *   {"event":"boot-failed", reason, code, message, problem?}     then exit GUEST_EXIT.*
 *   {"event":"disk-error", code, message}                        then exit GUEST_EXIT.diskError
 *   {"event":"stopped", lastDurableSeq}                          then exit 0
 * stderr carries human-readable messages. SIGTERM / SIGINT = graceful shutdown (flush, exit 0).
 */
import { readFile, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { isSecondsiteError } from '../../domain/errors.js';
import { GuestApp } from './guest-app.js';
import { parseGuestConfig, type GuestConfig } from './guest-config.js';
import { createGuestHttpServer, listenTcp, listenUnix } from './guest-http.js';

/** Exit statuses of the guest process. */
export const GUEST_EXIT = {
  ok: 0,
  /** Bad command line or config. */
  config: 2,
  /** A disk failed or was lost while running (the host agent went away, an I/O error). */
  diskError: 3,
  /** The log on the disk failed validation at boot. */
  logInvalid: 4,
  /** Another boot failure: a disk unreachable, an address not available. */
  bootFailed: 5,
} as const;

function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

function bootFailed(reason: string, exitCode: number, e: unknown): never {
  const message = e instanceof Error ? e.message : String(e);
  const code = isSecondsiteError(e) ? e.code : 'SECONDSITE_ERR_INTERNAL';
  const problem = isSecondsiteError(e) ? e.details.problem : undefined;
  emit({ event: 'boot-failed', reason, code, message, ...(problem ? { problem } : {}) });
  process.stderr.write(`guest: boot failed (${reason}): ${message}\n`);
  process.exit(exitCode);
}

async function main(argv: string[]): Promise<void> {
  const at = argv.indexOf('--config');
  const path = at >= 0 ? argv[at + 1] : undefined;
  if (!path) bootFailed('config', GUEST_EXIT.config, new Error('usage: guest-main --config <file.json>'));
  let config: GuestConfig;
  try {
    config = parseGuestConfig(JSON.parse(await readFile(path, 'utf8')) as unknown);
  } catch (e) {
    bootFailed('config', GUEST_EXIT.config, e);
  }

  let app: GuestApp | null = null;
  const servers: Server[] = [];
  let exiting = false;
  const stopAndExit = async (): Promise<void> => {
    if (exiting) return;
    exiting = true;
    try {
      await app?.shutdown();
      emit({ event: 'stopped', lastDurableSeq: app?.view().lastDurableSeq ?? 0 });
      for (const s of servers) s.close();
      process.exit(GUEST_EXIT.ok);
    } catch (e) {
      process.stderr.write(`guest: shutdown failed: ${(e as Error).message}\n`);
      emit({ event: 'disk-error', code: 'SECONDSITE_ERR_IO', message: (e as Error).message });
      process.exit(GUEST_EXIT.diskError);
    }
  };
  const onFatal = (e: Error): void => {
    const code = isSecondsiteError(e) ? e.code : 'SECONDSITE_ERR_IO';
    emit({ event: 'disk-error', code, message: e.message });
    process.stderr.write(`guest: disk error, stopping: ${e.message}\n`);
    process.exit(GUEST_EXIT.diskError);
  };
  process.on('SIGTERM', () => void stopAndExit());
  process.on('SIGINT', () => void stopAndExit());

  try {
    app = await GuestApp.boot(config, onFatal);
  } catch (e) {
    const invalidLog =
      isSecondsiteError(e, 'SECONDSITE_ERR_INVALID_STATE') && e.details.problem !== undefined;
    if (invalidLog) bootFailed('log-invalid', GUEST_EXIT.logInvalid, e);
    bootFailed('disk-unreachable', GUEST_EXIT.bootFailed, e);
  }

  const hooks = { afterShutdown: () => void stopAndExit() };
  const listen: { host: string; port: number }[] = [];
  try {
    for (const l of config.listen) {
      const s = createGuestHttpServer(app, hooks);
      servers.push(s);
      const a = await listenTcp(s, l.host, l.port);
      listen.push({ host: l.host, port: a.port });
    }
    app.setListen(listen); // before the agent socket answers, so the host sees the real ports
    if (config.agentSocket) {
      await rm(config.agentSocket, { force: true });
      const s = createGuestHttpServer(app, hooks);
      servers.push(s);
      await listenUnix(s, config.agentSocket);
    }
  } catch (e) {
    await app.shutdown().catch(() => undefined);
    bootFailed('listen', GUEST_EXIT.bootFailed, e);
  }
  const v = app.view();
  emit({
    event: 'ready',
    guestId: config.guestId,
    pid: process.pid,
    bootSeq: v.bootSeq,
    incarnation: v.incarnation,
    bootTornTail: v.bootTornTail,
    slotCount: v.slotCount,
    listen,
    agentSocket: config.agentSocket,
  });
}

main(process.argv.slice(2)).catch((e: unknown) => bootFailed('internal', GUEST_EXIT.bootFailed, e));

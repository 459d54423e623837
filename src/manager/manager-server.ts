/**
 * The management server process (`secondsite manager serve`): its own database (fabric; embedded
 * unless a URL is given), its control socket for `secondsite manager ...`, and, once registered, the
 * provider's session with the vault (docs/design/vault.md sections 5-7).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ControlServer } from '../control-api/control-server.js';
import type { Logger } from '../observability/logger.js';
import { openDatabase, type Database } from '../persistence/database.js';
import {
  loadProviderIdentity,
  providerClient,
  type ProviderIdentity,
} from './provider/provider-registration.js';
import { ProviderSession } from './provider/provider-session.js';
import { managerRoutes } from './manager-routes.js';

/** The control socket `secondsite manager ...` commands talk to. */
export function managerControlSocket(dataDir: string): string {
  return join(dataDir, 'manager.sock');
}

export const PROVIDER_VERSION = '0.1.0';

export interface ManagerServerOptions {
  readonly dataDir: string;
  readonly databaseUrl?: string | undefined;
  readonly log: Logger;
  readonly unsafeFastForTests?: boolean;
}

export class ManagerServer {
  private constructor(
    readonly db: Database,
    readonly identity: ProviderIdentity,
    readonly session: ProviderSession,
    private readonly control: ControlServer,
    private readonly log: Logger,
  ) {}

  static async start(options: ManagerServerOptions): Promise<ManagerServer> {
    const identity = await loadProviderIdentity(options.dataDir); // refuse early: not registered
    await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
    const db = await openDatabase({
      databaseUrl: options.databaseUrl,
      dataDir: options.dataDir,
      component: 'manager',
      ...(options.unsafeFastForTests ? { unsafeFastForTests: true } : {}),
    });
    const r = identity.registration;
    const session = new ProviderSession(
      providerClient(identity),
      r.managementServerId,
      r.heartbeatIntervalSeconds,
      PROVIDER_VERSION,
      options.log.child({ component: 'provider' }),
    );
    session.start();
    const control = new ControlServer(
      managerRoutes({ db, identity, session, dataDir: options.dataDir }),
      options.log.child({ component: 'control' }),
    );
    await control.listen(managerControlSocket(options.dataDir));
    options.log.info('management server started', {
      managementServerId: r.managementServerId,
      name: r.managementServerName,
      node: r.nodeName,
      vault: r.vaultUrl,
    });
    return new ManagerServer(db, identity, session, control, options.log);
  }

  async stop(): Promise<void> {
    await this.control.close();
    await this.session.stop();
    await this.db.close();
    this.log.info('management server stopped');
  }
}

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
import { CommandLoop } from './provider/command-loop.js';
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
  /** Default, until the manager's fabric inventory exists: version 0, the version its heartbeat reports. */
  readonly inventorySync?: InventorySync;
}

/**
 * Command `inventory.sync` from the vault (its inventory-refresh job): pushes the inventory to the
 * vault when the vault's version differs, and answers the management server's inventory version.
 */
export type InventorySync = (signal: AbortSignal) => Promise<{ inventoryVersion: number }>;

export class ManagerServer {
  private constructor(
    readonly db: Database,
    readonly identity: ProviderIdentity,
    readonly session: ProviderSession,
    readonly commands: CommandLoop,
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
    const commands = new CommandLoop(
      providerClient(identity),
      r.managementServerId,
      db,
      options.log.child({ component: 'provider-commands' }),
    );
    const inventorySync: InventorySync =
      options.inventorySync ?? (() => Promise.resolve({ inventoryVersion: 0 }));
    commands.register('inventory.sync', (_body, ctx) => inventorySync(ctx.signal));
    commands.start();
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
    return new ManagerServer(db, identity, session, commands, control, options.log);
  }

  async stop(): Promise<void> {
    await this.control.close();
    await this.session.stop();
    await this.commands.stop();
    await this.db.close();
    this.log.info('management server stopped');
  }
}

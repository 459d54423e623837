/**
 * The lab's control plane: a vault (`secondsite vault serve`) and one management server per site
 * (`secondsite manager serve`), real processes each with its own embedded PostgreSQL, registered with
 * registration keys exactly as the README tells a user to, then sending heartbeats. docs/design/vault.md.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ControlClient } from '../control-api/control-client.js';
import { SecondsiteError } from '../domain/errors.js';
import { managerControlSocket } from '../manager/manager-server.js';
import { registerProvider } from '../manager/provider/provider-registration.js';
import { VaultClient } from '../manager/provider/vault-client.js';
import type { ManagementServerView, RegistrationKeyFile } from '../protocol/vault-api/vault-api.schema.js';
import { spawnServe, stopServe, type ServeProcess } from './serve-process.js';

export interface ControlPlaneSite {
  readonly managementServerName: string;
  readonly dataDir: string;
}

/** A running management server of the lab. */
export interface ControlPlaneManager {
  readonly name: string;
  readonly managementServerId: string;
  readonly dataDir: string;
  /** Its control socket (what `secondsite manager ...` talks to). */
  readonly control: ControlClient;
}

export class ControlPlaneLab {
  private constructor(
    readonly vaultDir: string,
    readonly url: string,
    readonly admin: VaultClient,
    private readonly processes: ServeProcess[],
    private readonly logs: WriteStream[],
    readonly managers: ControlPlaneManager[] = [],
  ) {}

  /**
   * Starts the vault, registers one management server per site, starts them (reading their hosts
   * every `hostPollIntervalSeconds`, default 10).
   */
  static async start(
    dir: string,
    sites: readonly ControlPlaneSite[],
    options: { hostPollIntervalSeconds?: number } = {},
  ): Promise<ControlPlaneLab> {
    const logs: WriteStream[] = [];
    const processes: ServeProcess[] = [];
    const logFor = (name: string): { stream: WriteStream; path: string } => {
      const path = join(dir, 'logs', `${name}.log`);
      const stream = createWriteStream(path, { flags: 'a' });
      logs.push(stream);
      return { stream, path };
    };
    const env = { ...process.env };
    delete env['DATABASE_URL']; // the lab runs its own PostgreSQL per process, as the README says
    try {
      const vaultDir = join(dir, 'vault');
      const vl = logFor('vault');
      const vault = await spawnServe(
        [],
        [
          'vault',
          'serve',
          '--data-dir',
          vaultDir,
          '--listen',
          '127.0.0.1:0',
          '--name',
          'lab',
          '--heartbeat-interval',
          '5',
        ],
        vl.stream,
        'the vault',
        vl.path,
        env,
      );
      processes.push(vault);
      const url = String(vault.ready['url']);
      const admin = new VaultClient({
        url,
        caCertPem: await readFile(join(vaultDir, 'ca.crt'), 'utf8'),
        token: (await readFile(join(vaultDir, 'admin.token'), 'utf8')).trim(),
      });
      const lab = new ControlPlaneLab(vaultDir, url, admin, processes, logs);
      // registration keys: only the newest is valid, so one server at a time; then all start at once
      for (const s of sites) {
        const key = await admin.post<RegistrationKeyFile>('/v1/registration-keys', { expiresInHours: 1 });
        const keyFile = join(dir, `${s.managementServerName}.vaultcredentials`);
        await writeFile(keyFile, JSON.stringify(key), { mode: 0o600 });
        await registerProvider({
          dataDir: s.dataDir,
          keyFile,
          managementServerName: s.managementServerName,
          nodeName: 'node-1',
        });
      }
      const started = await Promise.allSettled(
        sites.map((s) => {
          const ml = logFor(s.managementServerName);
          return spawnServe(
            [],
            [
              'manager',
              'serve',
              '--data-dir',
              s.dataDir,
              '--enrol-listen',
              '127.0.0.1:0',
              '--host-poll-interval',
              String(options.hostPollIntervalSeconds ?? 10),
            ],
            ml.stream,
            s.managementServerName,
            ml.path,
            env,
          );
        }),
      );
      for (const r of started) if (r.status === 'fulfilled') processes.push(r.value);
      sites.forEach((s, i) => {
        const r = started[i];
        if (r?.status !== 'fulfilled') throw r?.reason;
        lab.managers.push({
          name: s.managementServerName,
          managementServerId: String(r.value.ready['managementServerId']),
          dataDir: s.dataDir,
          control: new ControlClient(managerControlSocket(s.dataDir)),
        });
      });
      return lab;
    } catch (e) {
      for (const p of processes.reverse()) await stopServe(p.child);
      for (const l of logs) l.end();
      throw e;
    }
  }

  manager(name: string): ControlPlaneManager {
    const m = this.managers.find((x) => x.name === name);
    if (!m) throw new SecondsiteError('SECONDSITE_ERR_NOT_FOUND', `no lab management server '${name}'`);
    return m;
  }

  async managementServers(): Promise<ManagementServerView[]> {
    return (await this.admin.get<{ managementServers: ManagementServerView[] }>('/v1/management-servers'))
      .managementServers;
  }

  /** Stops the management servers, then the vault. */
  async stop(): Promise<void> {
    for (const p of [...this.processes].reverse()) await stopServe(p.child);
    for (const l of this.logs) await new Promise<void>((r) => l.end(() => r()));
  }
}

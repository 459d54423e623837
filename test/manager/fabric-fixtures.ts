/**
 * A management server's fabric for tests: a fresh manager database on the test PostgreSQL, the fabric
 * services and their routes on a control socket in a temp data dir (as `manager serve` runs them,
 * without a vault session), the CLI run in process against it, and hosts inserted directly as
 * enrolment and the host poller would make them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { main } from '../../src/cli/main.js';
import { ControlServer } from '../../src/control-api/control-server.js';
import { createFabric, fabricRoutes, type Fabric } from '../../src/manager/fabric/fabric.routes.js';
import { managerControlSocket } from '../../src/manager/manager-server.js';
import { silentLogger } from '../../src/observability/logger.js';
import { openDatabase, type Database } from '../../src/persistence/database.js';
import type { HostInventory } from '../../src/protocol/host-api/manager-peer.schema.js';
import type { TestPostgres } from '../../src/testing/postgres/test-postgres.js';
import { managementVmRoutes } from '../../src/manager/fabric/management-vm.js';

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

export interface FabricFixture {
  db: Database;
  fabric: Fabric;
  dataDir: string;
  /** Runs `secondsite manager ...ARGS --data-dir <dataDir>` in process. */
  cli(...args: string[]): Promise<CliResult>;
  /** Like `cli`, parsing stdout as JSON (`--output json` is added); fails the test on a non-zero exit. */
  cliJson<T>(...args: string[]): Promise<T>;
  insertHost(hostId: string, inventory: HostInventory | null, hostGroupId?: string | null): Promise<void>;
  version(): Promise<number>;
}

export async function startFabric(pg: TestPostgres, t: Pick<TestContext, 'after'>): Promise<FabricFixture> {
  const databaseUrl = await pg.freshDatabase();
  const dataDir = await mkdtemp(join(tmpdir(), 'ss-fabric-'));
  const db = await openDatabase({ databaseUrl, dataDir, component: 'manager' });
  const fabric = createFabric({ db, dataDir, managementServerName: 'vmm-east', log: silentLogger });
  const control = new ControlServer([...fabricRoutes(fabric), ...managementVmRoutes(db)], silentLogger);
  await control.listen(managerControlSocket(dataDir));
  t.after(async () => {
    await control.close();
    await db.close();
    await pg.dropDatabase(databaseUrl);
    await rm(dataDir, { recursive: true, force: true });
  });
  const cli = async (...args: string[]): Promise<CliResult> => {
    let out = '';
    let err = '';
    const code = await main(['manager', ...args, '--data-dir', dataDir], {
      out: (s) => (out += `${s}\n`),
      err: (s) => (err += `${s}\n`),
    });
    return { code, out, err };
  };
  return {
    db,
    fabric,
    dataDir,
    cli,
    async cliJson<T>(...args: string[]): Promise<T> {
      const r = await cli(...args, '--output', 'json');
      if (r.code !== 0) throw new Error(`manager ${args.join(' ')} exited ${r.code}: ${r.err}`);
      return JSON.parse(r.out) as T;
    },
    async insertHost(hostId, inventory, hostGroupId = null) {
      await db.query(
        `INSERT INTO hosts (host_id, host_group_id, replication_address, replication_port, cert_serial,
                            cert_not_after, connection_state, last_contact_at, host_inventory)
         VALUES ($1, $2, '127.0.0.1', 8084, '01', now() + interval '1 year', $3, now(), $4)`,
        [hostId, hostGroupId, inventory ? 'connected' : 'disconnected', inventory],
      );
    },
    async version() {
      const r = await db.query<{ version: string }>('SELECT version FROM fabric_inventory_version');
      return Number(r.rows[0]?.version);
    },
  };
}

/** A host's report as its agent sends it: VMs with disks and NICs, storage locations, memory, CPUs. */
export function hostReport(
  hostId: string,
  vms: { vmId: string; state?: string; diskBytes?: number; networks?: string[]; ipv4?: string }[],
  storageLocations: string[] = ['replicas'],
): HostInventory {
  return {
    hostId,
    memoryBytes: 64 * 1024 ** 3,
    cpuCount: 16,
    storageLocations: storageLocations.map((name) => ({
      name,
      capacityBytes: 2 * 1024 ** 4,
      freeBytes: 1024 ** 4,
    })),
    vms: vms.map((vm) => ({
      vmId: vm.vmId,
      name: `${vm.vmId} display name`,
      state: vm.state ?? 'running',
      disks: [{ diskId: `${vm.vmId}-d0`, sizeBytes: vm.diskBytes ?? 10 * 1024 ** 3 }],
      nics: (vm.networks ?? []).map((network, i) => ({
        nicId: `nic${i}`,
        network,
        ipv4: vm.ipv4 ?? `10.1.0.${10 + i}`,
      })),
    })),
  };
}

/**
 * Clouds: named sets of host groups with the capacity they offer (VMM's clouds; what a cloud pairing
 * protects). Create is idempotent for the same host groups and capacity, and refused when a host
 * group is already covered by another cloud, directly or through nesting (placement.ts: a VM is in
 * one cloud at most). Deleting a cloud leaves its host groups and VM networks; the networks are no
 * longer available in it.
 */
import { SecondsiteError } from '../../domain/errors.js';
import { cloudOverlaps } from '../../domain/fabric/placement.js';
import { formatBytes } from '../../domain/units.js';
import type { Database } from '../../persistence/database.js';
import type { CloudCapacity, CloudView, Created } from './fabric-api.schema.js';
import { unknownHostGroups, unknownName } from './fabric-errors.js';
import { newFabricId } from './fabric-ids.js';
import { readFabric } from './fabric-reader.js';
import { fabricWrite } from './fabric-transaction.js';
import { cloudView } from './fabric-views.js';

const LIST = 'secondsite manager cloud list';

const capacityText = (c: CloudCapacity): string =>
  [
    `max VMs ${c.vmCount ?? 'unlimited'}`,
    `memory ${c.memoryBytes === null ? 'unlimited' : formatBytes(c.memoryBytes)}`,
    `storage ${c.storageBytes === null ? 'unlimited' : formatBytes(c.storageBytes)}`,
  ].join(', ');

export class CloudsService {
  constructor(private readonly db: Database) {}

  async list(): Promise<CloudView[]> {
    const rows = await readFabric(this.db);
    return rows.clouds.map((c) => cloudView(rows, c));
  }

  async get(name: string): Promise<CloudView> {
    const rows = await readFabric(this.db);
    const c = rows.clouds.find((x) => x.name === name);
    if (!c) throw unknownName('cloud', name, LIST);
    return cloudView(rows, c);
  }

  async create(
    name: string,
    hostGroups: readonly string[],
    capacity: CloudCapacity,
  ): Promise<Created<CloudView>> {
    const wanted = [...new Set(hostGroups)].sort();
    const created = await fabricWrite(this.db, async (tx) => {
      const rows = await readFabric(tx);
      const missing = wanted.filter((n) => !rows.hostGroups.some((g) => g.name === n));
      if (missing.length > 0) throw unknownHostGroups(missing);
      const ids = wanted.map((n) => rows.hostGroups.find((g) => g.name === n)?.hostGroupId ?? n);
      const existing = rows.clouds.find((c) => c.name === name);
      if (existing) {
        const view = cloudView(rows, existing);
        const sameGroups = [...view.hostGroups].sort().join(',') === wanted.join(',');
        const sameCapacity =
          existing.capacity.vmCount === capacity.vmCount &&
          existing.capacity.memoryBytes === capacity.memoryBytes &&
          existing.capacity.storageBytes === capacity.storageBytes;
        if (sameGroups && sameCapacity) return false;
        throw new SecondsiteError(
          'SECONDSITE_ERR_ALREADY_EXISTS',
          `cloud ${name} exists with host groups ${view.hostGroups.join(', ')} and ${capacityText(existing.capacity)}` +
            ` (asked: host groups ${wanted.join(', ')} and ${capacityText(capacity)}); choose another name or delete it first`,
          { name },
        );
      }
      const overlaps = cloudOverlaps({ name, hostGroupIds: ids }, rows.clouds, rows.hostGroups);
      if (overlaps.length > 0) {
        const o = overlaps.map((x) =>
          x.hostGroupName === x.otherHostGroupName
            ? `host group ${x.hostGroupName} is in cloud ${x.cloudName}`
            : `host group ${x.hostGroupName} overlaps host group ${x.otherHostGroupName} of cloud ${x.cloudName} (one is nested in the other)`,
        );
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          `${o.join('; ')}; a host group belongs to one cloud at most (with the groups nested in it), so that each VM is in one cloud: choose other host groups`,
          { name, overlaps },
        );
      }
      const cloudId = newFabricId('cloud');
      await tx.query(
        `INSERT INTO clouds (cloud_id, name, max_vm_count, max_memory_bytes, max_storage_bytes)
         VALUES ($1, $2, $3, $4, $5)`,
        [cloudId, name, capacity.vmCount, capacity.memoryBytes, capacity.storageBytes],
      );
      await tx.query(
        'INSERT INTO cloud_host_groups (cloud_id, host_group_id) SELECT $1, unnest($2::text[])',
        [cloudId, ids],
      );
      return true;
    });
    return { ...(await this.get(name)), created };
  }

  async delete(name: string): Promise<{ name: string; deleted: true }> {
    await fabricWrite(this.db, async (tx) => {
      const r = await tx.query('DELETE FROM clouds WHERE name = $1', [name]);
      if (r.rowCount === 0) throw unknownName('cloud', name, LIST);
    });
    return { name, deleted: true };
  }
}

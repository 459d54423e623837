/**
 * Host groups (VMM's "All Hosts" tree) and which group a host is in. A host group is created under a
 * parent (or at the top) and keeps it; creating it again with the same parent is harmless, with
 * another parent it is refused. Deleting refuses while the group holds hosts or other groups or a
 * cloud uses it, naming them. Moving a host to another group moves it (and its VMs) to that group's
 * cloud.
 */
import { SecondsiteError } from '../../domain/errors.js';
import type { Database } from '../../persistence/database.js';
import type { Created, HostGroupView } from './fabric-api.schema.js';
import { list, unknownHostGroups, unknownName } from './fabric-errors.js';
import { newFabricId } from './fabric-ids.js';
import { readFabric } from './fabric-reader.js';
import { fabricWrite } from './fabric-transaction.js';
import { hostGroupViews } from './fabric-views.js';

export class HostGroupsService {
  constructor(private readonly db: Database) {}

  async list(): Promise<HostGroupView[]> {
    return hostGroupViews(await readFabric(this.db));
  }

  async create(name: string, parent: string | null): Promise<Created<HostGroupView>> {
    const created = await fabricWrite(this.db, async (tx) => {
      const rows = await readFabric(tx);
      const existing = rows.hostGroups.find((g) => g.name === name);
      const parentGroup = parent === null ? null : rows.hostGroups.find((g) => g.name === parent);
      if (existing) {
        const existingParent = rows.hostGroups.find((g) => g.hostGroupId === existing.parentHostGroupId);
        if ((existingParent?.name ?? null) === parent) return false;
        throw new SecondsiteError(
          'SECONDSITE_ERR_ALREADY_EXISTS',
          `host group ${name} exists ${existingParent ? `under ${existingParent.name}` : 'at the top level'}, not ${parent === null ? 'at the top level' : `under ${parent}`}; choose another name`,
          { name },
        );
      }
      if (parent !== null && !parentGroup) throw unknownHostGroups([parent]);
      await tx.query(
        'INSERT INTO host_groups (host_group_id, name, parent_host_group_id) VALUES ($1, $2, $3)',
        [newFabricId('hg'), name, parentGroup?.hostGroupId ?? null],
      );
      return true;
    });
    const view = (await this.list()).find((g) => g.name === name);
    if (!view) throw unknownName('host group', name, 'secondsite manager host-group list');
    return { ...view, created };
  }

  async delete(name: string): Promise<{ name: string; deleted: true }> {
    await fabricWrite(this.db, async (tx) => {
      const rows = await readFabric(tx);
      const group = rows.hostGroups.find((g) => g.name === name);
      if (!group) throw unknownName('host group', name, 'secondsite manager host-group list');
      const clouds = rows.clouds.filter((c) => c.hostGroupIds.includes(group.hostGroupId)).map((c) => c.name);
      if (clouds.length > 0) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          `host group ${name} is used by cloud ${list(clouds)}; delete the cloud first ('secondsite manager cloud delete NAME')`,
          { name, clouds },
        );
      }
      const children = rows.hostGroups
        .filter((g) => g.parentHostGroupId === group.hostGroupId)
        .map((g) => g.name);
      if (children.length > 0) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          `host group ${name} holds host group ${list(children)}; delete those first`,
          { name, hostGroups: children },
        );
      }
      const hosts = rows.hosts.filter((h) => h.hostGroupId === group.hostGroupId).map((h) => h.hostId);
      if (hosts.length > 0) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          `host group ${name} holds host ${list(hosts)}; move them first ('secondsite manager host move HOST --host-group OTHER')`,
          { name, hosts },
        );
      }
      await tx.query('DELETE FROM host_groups WHERE host_group_id = $1', [group.hostGroupId]);
    });
    return { name, deleted: true };
  }

  /** Puts the host in the group; `moved` is false when it was there already. */
  async moveHost(
    hostId: string,
    hostGroup: string,
  ): Promise<{ hostId: string; hostGroup: string; cloud: string | null; moved: boolean }> {
    const moved = await fabricWrite(this.db, async (tx) => {
      const rows = await readFabric(tx);
      const host = rows.hosts.find((h) => h.hostId === hostId);
      if (!host) throw unknownName('host', hostId, 'secondsite manager host list');
      const group = rows.hostGroups.find((g) => g.name === hostGroup);
      if (!group) throw unknownHostGroups([hostGroup]);
      if (host.hostGroupId === group.hostGroupId) return false;
      await tx.query('UPDATE hosts SET host_group_id = $2 WHERE host_id = $1', [hostId, group.hostGroupId]);
      return true;
    });
    const view = (await this.list()).find((g) => g.name === hostGroup);
    return { hostId, hostGroup, cloud: view?.cloud ?? null, moved };
  }
}

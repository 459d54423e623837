/**
 * VM networks: a name the hosts' NICs use (a NIC's `network`), the clouds whose VMs may use it, and
 * its subnets with gateway and IP pools (rules in domain/fabric/vm-network.rules.ts). Create is
 * idempotent for the same clouds and subnets. Deleting refuses while VMs have NICs on the network
 * (their network mapping would be lost), naming them.
 */
import { SecondsiteError } from '../../domain/errors.js';
import { parseIpv4 } from '../../domain/fabric/ipv4.js';
import { validateSubnets, type SubnetSpec, type ValidSubnet } from '../../domain/fabric/vm-network.rules.js';
import type { Database } from '../../persistence/database.js';
import type { Created, VmNetworkView } from './fabric-api.schema.js';
import { list, unknownName } from './fabric-errors.js';
import { newFabricId } from './fabric-ids.js';
import { readFabric } from './fabric-reader.js';
import { fabricWrite } from './fabric-transaction.js';
import { vmNetworkView, vmsOnNetwork } from './fabric-views.js';

const LIST = 'secondsite manager vm-network list';

const subnetsText = (subnets: readonly ValidSubnet[]): string =>
  subnets
    .map(
      (s) =>
        `${s.cidr}${s.gateway ? ` gateway ${s.gateway}` : ''}${[...s.ipPools]
          .sort((a, b) => (parseIpv4(a.rangeStart) ?? 0) - (parseIpv4(b.rangeStart) ?? 0))
          .map((p) => ` pool ${p.name} ${p.rangeStart}-${p.rangeEnd}`)
          .join('')}`,
    )
    .join('; ');

export class VmNetworksService {
  constructor(private readonly db: Database) {}

  async list(): Promise<VmNetworkView[]> {
    const rows = await readFabric(this.db);
    return rows.vmNetworks.map((n) => vmNetworkView(rows, n));
  }

  async get(name: string): Promise<VmNetworkView> {
    const rows = await readFabric(this.db);
    const n = rows.vmNetworks.find((x) => x.name === name);
    if (!n) throw unknownName('VM network', name, LIST);
    return vmNetworkView(rows, n);
  }

  async create(
    name: string,
    clouds: readonly string[],
    subnetSpecs: readonly SubnetSpec[],
  ): Promise<Created<VmNetworkView>> {
    const subnets = validateSubnets(subnetSpecs);
    const wanted = [...new Set(clouds)].sort();
    const created = await fabricWrite(this.db, async (tx) => {
      const rows = await readFabric(tx);
      const missing = wanted.filter((c) => !rows.clouds.some((x) => x.name === c));
      if (missing.length > 0) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_NOT_FOUND',
          `no cloud ${missing.join(', ')}; create it with 'secondsite manager cloud create NAME --host-group G' or list them with '${'secondsite manager cloud list'}'`,
          { clouds: missing },
        );
      }
      const existing = rows.vmNetworks.find((n) => n.name === name);
      if (existing) {
        const view = vmNetworkView(rows, existing);
        if (
          [...view.clouds].sort().join(',') === wanted.join(',') &&
          subnetsText(view.subnets) === subnetsText(subnets)
        )
          return false;
        throw new SecondsiteError(
          'SECONDSITE_ERR_ALREADY_EXISTS',
          `VM network ${name} exists in cloud ${list(view.clouds)} with subnet ${subnetsText(view.subnets)}` +
            ` (asked: cloud ${wanted.join(', ')} with subnet ${subnetsText(subnets)}); choose another name or delete it first`,
          { name },
        );
      }
      const vmNetworkId = newFabricId('vmnet');
      await tx.query('INSERT INTO vm_networks (vm_network_id, name) VALUES ($1, $2)', [vmNetworkId, name]);
      await tx.query(
        `INSERT INTO cloud_vm_networks (cloud_id, vm_network_id)
         SELECT cloud_id, $1 FROM clouds WHERE name = ANY($2::text[])`,
        [vmNetworkId, wanted],
      );
      for (const [position, s] of subnets.entries()) {
        const subnetId = newFabricId('subnet');
        await tx.query(
          `INSERT INTO vm_network_subnets (subnet_id, vm_network_id, position, cidr, gateway)
           VALUES ($1, $2, $3, $4::cidr, $5::inet)`,
          [subnetId, vmNetworkId, position, s.cidr, s.gateway],
        );
        for (const p of s.ipPools) {
          await tx.query(
            `INSERT INTO vm_network_ip_pools (ip_pool_id, subnet_id, name, range_start, range_end)
             VALUES ($1, $2, $3, $4::inet, $5::inet)`,
            [newFabricId('ippool'), subnetId, p.name, p.rangeStart, p.rangeEnd],
          );
        }
      }
      return true;
    });
    return { ...(await this.get(name)), created };
  }

  async delete(name: string): Promise<{ name: string; deleted: true }> {
    await fabricWrite(this.db, async (tx) => {
      const rows = await readFabric(tx);
      if (!rows.vmNetworks.some((n) => n.name === name)) throw unknownName('VM network', name, LIST);
      const vms = vmsOnNetwork(rows, name);
      if (vms.length > 0) {
        throw new SecondsiteError(
          'SECONDSITE_ERR_INVALID_STATE',
          `VM network ${name} is used by the NICs of VM ${list(vms)}; connect them to another network or remove them first`,
          { name, vms },
        );
      }
      await tx.query('DELETE FROM vm_networks WHERE name = $1', [name]);
    });
    return { name, deleted: true };
  }
}

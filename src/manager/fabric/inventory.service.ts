/**
 * The management server's inventory document (inventory-assembly.ts) and its version, read from one
 * snapshot of the fabric tables, checked against the contract the vault applies.
 */
import type { Logger } from '../../observability/logger.js';
import type { Database } from '../../persistence/database.js';
import { inventorySchema, type Inventory } from '../../protocol/vault-api/inventory.schema.js';
import { currentInventoryVersion, readFabric } from './fabric-reader.js';
import { assembleInventory } from './inventory-assembly.js';
import { readSiteCaCertPem } from './site-ca-cert.js';

export class InventoryService {
  constructor(
    private readonly db: Database,
    private readonly dataDir: string,
    private readonly managementServerName: string,
    private readonly log: Logger,
  ) {}

  currentVersion(): Promise<number> {
    return currentInventoryVersion(this.db);
  }

  /** The document as the vault will get it; entries the contract would refuse are left out and logged. */
  async document(): Promise<Inventory> {
    const siteCaCertPem = await readSiteCaCertPem(this.dataDir, this.managementServerName);
    const rows = await this.db.transaction((tx) => readFabric(tx), { isolation: 'repeatable read' });
    const { inventory, problems } = assembleInventory(rows, siteCaCertPem);
    for (const problem of problems) this.log.warn('inventory entry left out', { problem });
    return inventorySchema.parse(inventory);
  }
}

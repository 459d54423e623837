/**
 * Sends the inventory to the vault (docs/design/vault.md section 6): after each heartbeat, when the
 * version the vault answered differs from the management server's, and on request (`secondsite
 * manager inventory sync`). The whole document goes in one `PUT /v1/management-servers/:id/inventory`;
 * the vault applies it only when it is newer than what it holds. A failed send is logged and tried
 * again after the next heartbeat (whose answer still shows the old version). Sends run one at a time.
 */
import type { Logger } from '../../observability/logger.js';
import { inventoryAcceptedSchema } from '../../protocol/vault-api/inventory.schema.js';
import type { VaultClient } from '../provider/vault-client.js';
import type { InventoryService } from './inventory.service.js';

export interface InventorySyncResult {
  /** The version the vault holds after the send. */
  readonly inventoryVersion: number;
  /** False when the vault already held this version or a newer one. */
  readonly applied: boolean;
}

/** Where the inventory stands with the vault (`secondsite manager inventory status`). */
export interface InventorySyncStatus {
  readonly inventoryVersion: number;
  /** The version the vault last said it holds; null before the first heartbeat or send. */
  readonly vaultInventoryVersion: number | null;
  readonly inSync: boolean;
  readonly sendsDone: number;
  /** The last send's error; null after a send that worked. */
  readonly lastError: string | null;
}

export class InventorySync {
  private chain: Promise<unknown> = Promise.resolve();
  /** The version the vault last said it holds (heartbeat or send); null before the first. */
  vaultInventoryVersion: number | null = null;
  sendsDone = 0;
  lastError: string | null = null;

  constructor(
    private readonly inventory: InventoryService,
    private readonly client: VaultClient,
    private readonly managementServerId: string,
    private readonly log: Logger,
  ) {}

  /** Called with each heartbeat's answer; never throws (a failure waits for the next heartbeat). */
  async afterHeartbeat(vaultInventoryVersion: number): Promise<void> {
    this.vaultInventoryVersion = vaultInventoryVersion;
    let current: number;
    try {
      current = await this.inventory.currentVersion();
    } catch (e) {
      this.log.warn('reading the inventory version failed; trying again after the next heartbeat', {
        error: (e as Error).message,
      });
      return;
    }
    if (current === vaultInventoryVersion) return;
    await this.sendNow().catch(() => undefined); // logged by send
  }

  async status(): Promise<InventorySyncStatus> {
    const inventoryVersion = await this.inventory.currentVersion();
    return {
      inventoryVersion,
      vaultInventoryVersion: this.vaultInventoryVersion,
      inSync: this.vaultInventoryVersion === inventoryVersion,
      sendsDone: this.sendsDone,
      lastError: this.lastError,
    };
  }

  /** Sends the current document now; throws what the vault (or the way there) answered. */
  sendNow(): Promise<InventorySyncResult> {
    const run = this.chain.then(() => this.send());
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async send(): Promise<InventorySyncResult> {
    try {
      const document = await this.inventory.document();
      const answer = inventoryAcceptedSchema.parse(
        await this.client.call(
          'PUT',
          `/v1/management-servers/${encodeURIComponent(this.managementServerId)}/inventory`,
          document,
        ),
      );
      this.vaultInventoryVersion = answer.inventoryVersion;
      this.sendsDone++;
      if (this.lastError !== null) this.log.info('inventory reaches the vault again');
      this.lastError = null;
      this.log.info('inventory sent to the vault', {
        inventoryVersion: document.inventoryVersion,
        applied: answer.applied,
        vaultInventoryVersion: answer.inventoryVersion,
      });
      return answer;
    } catch (e) {
      const message = (e as Error).message;
      if (message !== this.lastError)
        this.log.warn('sending the inventory to the vault failed; retrying after the next heartbeat', {
          error: message,
        });
      this.lastError = message;
      throw e;
    }
  }
}

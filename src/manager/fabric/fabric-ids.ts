/** Ids the management server makes for its fabric objects (inventory.schema.ts fabricIdSchema). */
import { randomBytes } from 'node:crypto';

/** `<prefix>-<16 hex>`, e.g. `cloud-3f9a0c...`: stable for the object's life, unique within the server. */
export function newFabricId(prefix: 'hg' | 'cloud' | 'vmnet' | 'subnet' | 'ippool'): string {
  return `${prefix}-${randomBytes(8).toString('hex')}`;
}

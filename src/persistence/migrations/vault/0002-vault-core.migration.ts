// The vault's identity and CA, users and API tokens, registration keys, management servers and their
// provider nodes, alerts, and the append-only audit log (docs/design/vault.md).
import type { Migration } from '../migration.js';
import { VAULT_CORE_SQL } from './vault-core.sql.js';

export const migration: Migration = { version: 2, name: 'vault-core', sql: VAULT_CORE_SQL };

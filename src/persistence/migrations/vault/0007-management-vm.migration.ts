// The VM that runs a management server, as its inventory names it (DESIGN.md section 3): it must not
// sit in a protected cloud, so pairing a cloud that holds it and enabling its replication are refused.
import type { Migration } from '../migration.js';

export const migration: Migration = {
  version: 7,
  name: 'management-vm',
  sql: `ALTER TABLE management_servers ADD COLUMN management_vm jsonb;`,
};

// The management server's own VM (DESIGN.md section 3, single management server): the VM that runs
// this management server, if it runs on one of its own hosts. It is sent in the inventory so the vault
// refuses to protect it or to pair a cloud that holds it (it is protected with host replication
// directly). One row at most; a change moves the inventory version like any fabric change.
import type { Migration } from '../migration.js';

export const migration: Migration = {
  version: 7,
  name: 'management-vm',
  sql: `
CREATE TABLE management_vm (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  host_id    text NOT NULL,
  vm_id      text NOT NULL
);
CREATE TRIGGER management_vm_inventory_insert AFTER INSERT ON management_vm REFERENCING NEW TABLE AS fabric_new
  FOR EACH STATEMENT EXECUTE FUNCTION fabric_inventory_changed();
CREATE TRIGGER management_vm_inventory_update AFTER UPDATE ON management_vm
  REFERENCING NEW TABLE AS fabric_new OLD TABLE AS fabric_old
  FOR EACH STATEMENT EXECUTE FUNCTION fabric_inventory_changed();
CREATE TRIGGER management_vm_inventory_delete AFTER DELETE ON management_vm REFERENCING OLD TABLE AS fabric_old
  FOR EACH STATEMENT EXECUTE FUNCTION fabric_inventory_changed();
`,
};

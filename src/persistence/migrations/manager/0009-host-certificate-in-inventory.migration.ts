// A host's certificate end is part of the inventory the vault holds (docs/design/certificate-renewal.md
// section 5): a renewal, which changes `hosts.cert_not_after`, moves the inventory version, so the
// vault sees the new end and can alert on a certificate that is not renewed.
import type { Migration } from '../migration.js';

export const migration: Migration = {
  version: 9,
  name: 'host-certificate-in-inventory',
  sql: `
DROP TRIGGER hosts_inventory_update ON hosts;
CREATE TRIGGER hosts_inventory_update AFTER UPDATE ON hosts
  REFERENCING NEW TABLE AS fabric_new OLD TABLE AS fabric_old
  FOR EACH STATEMENT EXECUTE FUNCTION fabric_hosts_update_changed(
    'last_contact_at', 'last_error', 'cert_serial', 'enrolled_at');
`,
};

// The end of each host's certificate, as its management server's inventory reports it
// (docs/design/certificate-renewal.md section 5): shown with the host and behind the
// host-certificate-expiring alert. NULL when the management server does not report it.
import type { Migration } from '../migration.js';

export const migration: Migration = {
  version: 9,
  name: 'fabric-host-certificate',
  sql: `ALTER TABLE fabric_hosts ADD COLUMN cert_not_after timestamptz;`,
};

// A provider node's next certificate (docs/design/certificate-renewal.md section 4): signed by a
// renewal, accepted beside the current one until the first request that presents it makes it current.
import type { Migration } from '../migration.js';

export const migration: Migration = {
  version: 8,
  name: 'provider-next-certificate',
  sql: `ALTER TABLE provider_nodes
          ADD COLUMN next_cert_serial text,
          ADD COLUMN next_cert_not_after timestamptz,
          ADD COLUMN cert_renewed_at timestamptz,
          ADD CONSTRAINT provider_nodes_next_cert_whole
            CHECK ((next_cert_serial IS NULL) = (next_cert_not_after IS NULL));`,
};

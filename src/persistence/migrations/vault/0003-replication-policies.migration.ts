// Replication policies (docs/design/vault.md section 6): Site Recovery's policy settings, one row per
// policy, with the database checking the same rules as domain/vault/replication-policy.ts so a row can
// never hold a policy the API would refuse. Cloud pairings (a later migration) reference policy_id.
import type { Migration } from '../migration.js';

const SQL = `
CREATE TABLE replication_policies (
  policy_id                       text PRIMARY KEY,
  name                            text NOT NULL UNIQUE,
  description                     text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
  copy_frequency_seconds          integer NOT NULL CHECK (copy_frequency_seconds IN (0, 30, 300, 900)),
  retention_hours                 integer NOT NULL CHECK (retention_hours BETWEEN 0 AND 720),
  app_consistent_frequency_hours  integer NOT NULL CHECK (app_consistent_frequency_hours BETWEEN 0 AND 12),
  compression                     boolean NOT NULL,
  replication_port                integer NOT NULL CHECK (replication_port BETWEEN 1 AND 65535),
  initial_replication_method      text NOT NULL CHECK (initial_replication_method IN ('network', 'offline')),
  offline_export_path             text CHECK (offline_export_path LIKE '/%'),
  offline_import_path             text CHECK (offline_import_path LIKE '/%'),
  -- NULL: start at once; else the time (UTC) the initial replication starts
  initial_replication_start_at    timestamptz,
  delete_replica_on_disable       boolean NOT NULL,
  resync_mode                     text NOT NULL CHECK (resync_mode IN ('automatic', 'manual', 'window')),
  resync_window                   text CHECK (resync_window ~ '^[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]$'),
  created_at                      timestamptz NOT NULL DEFAULT now(),
  updated_at                      timestamptz NOT NULL DEFAULT now(),
  CHECK (retention_hours = 0 OR app_consistent_frequency_hours < retention_hours),
  CHECK ((initial_replication_method = 'offline') =
         (offline_export_path IS NOT NULL AND offline_import_path IS NOT NULL)),
  CHECK (initial_replication_method = 'offline' OR
         (offline_export_path IS NULL AND offline_import_path IS NULL)),
  CHECK ((resync_mode = 'window') = (resync_window IS NOT NULL))
);
`;

export const migration: Migration = { version: 3, name: 'replication-policies', sql: SQL };

// Replicated items (docs/design/protection.md sections 5-6): one protected VM each, with its placement
// (replica host and storage location, stored before any command is sent), its protection state as the
// vault sees it, and the status the management servers report (health, last point, lag, points).
// Authorization revisions: per management server, the revision and digest of the derived
// authorization lists last sent, so a change is sent once and an unchanged list never.
import type { Migration } from '../migration.js';

const SQL = `
CREATE TABLE replicated_items (
  replicated_item_id             text PRIMARY KEY,
  primary_management_server_id   text NOT NULL REFERENCES management_servers (management_server_id) ON DELETE RESTRICT,
  vm_id                          text NOT NULL,
  vm_name                        text NOT NULL,
  primary_host_id                text NOT NULL,
  pairing_id                     text NOT NULL REFERENCES cloud_pairings (pairing_id) ON DELETE RESTRICT,
  recovery_management_server_id  text NOT NULL REFERENCES management_servers (management_server_id) ON DELETE RESTRICT,
  replica_host_id                text,
  storage_location               text,
  protection_state               text NOT NULL DEFAULT 'Enabling'
    CHECK (protection_state IN ('Enabling', 'InitialReplicationInProgress', 'Protected', 'EnableFailed', 'Disabling')),
  replication_health             text NOT NULL DEFAULT 'Normal'
    CHECK (replication_health IN ('Normal', 'Warning', 'Critical')),
  health_reasons                 jsonb NOT NULL DEFAULT '[]',
  host_protection_state          text,
  last_point_id                  text,
  last_point_cut_at              timestamptz,
  lag_seconds                    double precision,
  last_error                     jsonb,
  -- [{pointId, cutAt, consistency}] oldest first, as the replica host reports them
  points                         jsonb NOT NULL DEFAULT '[]',
  enable_job_id                  text,
  status_reported_at             timestamptz,
  created_at                     timestamptz NOT NULL DEFAULT now(),
  updated_at                     timestamptz NOT NULL DEFAULT now(),
  -- a VM id is its host's: (management server, host, VM id) names one VM
  UNIQUE (primary_management_server_id, primary_host_id, vm_id),
  CHECK ((replica_host_id IS NULL) = (storage_location IS NULL))
);
CREATE INDEX replicated_items_replica ON replicated_items (recovery_management_server_id, replica_host_id);
CREATE INDEX replicated_items_pairing ON replicated_items (pairing_id);
CREATE INDEX replicated_items_name ON replicated_items (vm_name, replicated_item_id);

CREATE TABLE authorization_revisions (
  management_server_id  text PRIMARY KEY REFERENCES management_servers (management_server_id) ON DELETE CASCADE,
  revision              bigint NOT NULL,
  lists_sha256          text NOT NULL,
  sent_at               timestamptz NOT NULL DEFAULT now()
);
`;

export const migration: Migration = { version: 6, name: 'replicated-items', sql: SQL };

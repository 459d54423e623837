// The management server's hosts and host groups (docs/design/vault.md section 6). A host row is made
// by enrolment; the host poller keeps its connection state and the inventory the host reported.
import type { Migration } from '../migration.js';

export const migration: Migration = {
  version: 2,
  name: 'hosts',
  sql: `
CREATE TABLE host_groups (
  host_group_id         text PRIMARY KEY,
  name                  text NOT NULL UNIQUE,
  parent_host_group_id  text REFERENCES host_groups (host_group_id) ON DELETE RESTRICT,
  created_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE hosts (
  host_id              text PRIMARY KEY,
  host_group_id        text REFERENCES host_groups (host_group_id) ON DELETE RESTRICT,
  -- where the manager (and other hosts) reach the host's replication port / peer API
  replication_address  text NOT NULL,
  replication_port     integer NOT NULL CHECK (replication_port BETWEEN 1 AND 65535),
  cert_serial          text NOT NULL,
  cert_not_after       timestamptz NOT NULL,
  enrolled_at          timestamptz NOT NULL DEFAULT now(),
  connection_state     text NOT NULL DEFAULT 'disconnected'
                       CHECK (connection_state IN ('connected', 'disconnected')),
  last_contact_at      timestamptz,
  last_error           text,
  -- the host's last report: protocol/host-api/manager-peer.schema.ts hostInventorySchema
  host_inventory       jsonb
);
`,
};

// The fabric the providers send (docs/design/vault.md section 6) and what protection builds on it:
// cloud pairings, network mappings and storage mappings. Every fabric row is scoped by its management
// server: ids are the management server's, unique within it, so the key is (management_server_id, id).
//
// An inventory replaces its management server's fabric in one transaction (fabric/inventory.service.ts).
// Clouds, VM networks and storage classifications are what pairings and mappings reference: one that
// a pairing or mapping uses and that leaves the inventory is kept with `missing_since` set (and a
// Warning alert) instead of deleted; the foreign keys below (ON DELETE RESTRICT) make a silent delete
// impossible even for a faulty ingest. Leaf details (storage locations, subnets and IP pools, disks,
// NICs) are jsonb on their owner: nothing references them, and one row per object keeps big
// inventories quick to replace.
import type { Migration } from '../migration.js';

const SQL = `
ALTER TABLE management_servers
  ADD COLUMN site_ca_cert_pem text,
  ADD COLUMN inventory_received_at timestamptz;

CREATE TABLE fabric_host_groups (
  management_server_id  text NOT NULL REFERENCES management_servers (management_server_id) ON DELETE CASCADE,
  host_group_id         text NOT NULL,
  name                  text NOT NULL,
  parent_host_group_id  text,
  PRIMARY KEY (management_server_id, host_group_id)
);

CREATE TABLE fabric_hosts (
  management_server_id  text NOT NULL REFERENCES management_servers (management_server_id) ON DELETE CASCADE,
  host_id               text NOT NULL,
  host_group_id         text,
  connection_state      text NOT NULL CHECK (connection_state IN ('connected', 'disconnected')),
  replication_address   text NOT NULL,
  replication_port      integer NOT NULL CHECK (replication_port BETWEEN 1 AND 65535),
  memory_bytes          bigint NOT NULL CHECK (memory_bytes >= 0),
  cpu_count             integer NOT NULL CHECK (cpu_count >= 0),
  -- [{name, storageClassification, capacityBytes, freeBytes}]
  storage_locations     jsonb NOT NULL DEFAULT '[]',
  PRIMARY KEY (management_server_id, host_id),
  FOREIGN KEY (management_server_id, host_group_id)
    REFERENCES fabric_host_groups (management_server_id, host_group_id)
);

CREATE TABLE fabric_clouds (
  management_server_id  text NOT NULL REFERENCES management_servers (management_server_id) ON DELETE CASCADE,
  cloud_id              text NOT NULL,
  -- unique among the present clouds of a management server (checked at ingest)
  name                  text NOT NULL,
  capacity_vm_count     integer CHECK (capacity_vm_count >= 0),
  capacity_memory_bytes bigint CHECK (capacity_memory_bytes >= 0),
  capacity_storage_bytes bigint CHECK (capacity_storage_bytes >= 0),
  -- set when the cloud left the inventory while a pairing uses it
  missing_since         timestamptz,
  PRIMARY KEY (management_server_id, cloud_id)
);
CREATE INDEX fabric_clouds_name ON fabric_clouds (name);

CREATE TABLE fabric_cloud_host_groups (
  management_server_id  text NOT NULL,
  cloud_id              text NOT NULL,
  host_group_id         text NOT NULL,
  PRIMARY KEY (management_server_id, cloud_id, host_group_id),
  FOREIGN KEY (management_server_id, cloud_id)
    REFERENCES fabric_clouds (management_server_id, cloud_id) ON DELETE CASCADE,
  FOREIGN KEY (management_server_id, host_group_id)
    REFERENCES fabric_host_groups (management_server_id, host_group_id) ON DELETE CASCADE
);

-- the hosts of a cloud (in its host groups or groups nested in them), derived at ingest
CREATE TABLE fabric_cloud_hosts (
  management_server_id  text NOT NULL,
  cloud_id              text NOT NULL,
  host_id               text NOT NULL,
  PRIMARY KEY (management_server_id, cloud_id, host_id),
  FOREIGN KEY (management_server_id, cloud_id)
    REFERENCES fabric_clouds (management_server_id, cloud_id) ON DELETE CASCADE,
  FOREIGN KEY (management_server_id, host_id)
    REFERENCES fabric_hosts (management_server_id, host_id) ON DELETE CASCADE
);
CREATE INDEX fabric_cloud_hosts_host ON fabric_cloud_hosts (management_server_id, host_id);

CREATE TABLE fabric_vm_networks (
  management_server_id  text NOT NULL REFERENCES management_servers (management_server_id) ON DELETE CASCADE,
  vm_network_id         text NOT NULL,
  name                  text NOT NULL,
  -- [{cidr, gateway, ipPools: [{ipPoolId, name, rangeStart, rangeEnd}]}]
  subnets               jsonb NOT NULL DEFAULT '[]',
  -- set when the network left the inventory while a network mapping uses it
  missing_since         timestamptz,
  PRIMARY KEY (management_server_id, vm_network_id)
);

CREATE TABLE fabric_vm_network_clouds (
  management_server_id  text NOT NULL,
  vm_network_id         text NOT NULL,
  cloud_id              text NOT NULL,
  PRIMARY KEY (management_server_id, vm_network_id, cloud_id),
  FOREIGN KEY (management_server_id, vm_network_id)
    REFERENCES fabric_vm_networks (management_server_id, vm_network_id) ON DELETE CASCADE,
  FOREIGN KEY (management_server_id, cloud_id)
    REFERENCES fabric_clouds (management_server_id, cloud_id) ON DELETE CASCADE
);
CREATE INDEX fabric_vm_network_clouds_cloud ON fabric_vm_network_clouds (management_server_id, cloud_id);

-- the classifications the hosts' storage locations name ('' = unclassified is not one)
CREATE TABLE fabric_storage_classifications (
  management_server_id  text NOT NULL REFERENCES management_servers (management_server_id) ON DELETE CASCADE,
  name                  text NOT NULL CHECK (name <> ''),
  missing_since         timestamptz,
  PRIMARY KEY (management_server_id, name)
);

CREATE TABLE fabric_vms (
  management_server_id  text NOT NULL REFERENCES management_servers (management_server_id) ON DELETE CASCADE,
  vm_id                 text NOT NULL,
  name                  text NOT NULL,
  host_id               text NOT NULL,
  cloud_id              text,
  power_state           text NOT NULL,
  -- [{diskId, sizeBytes}], [{nicId, vmNetworkId, ipAddress}]
  disks                 jsonb NOT NULL DEFAULT '[]',
  nics                  jsonb NOT NULL DEFAULT '[]',
  -- a VM's id is its host's (two hosts may hold the same id, e.g. a failed-over VM and its source)
  PRIMARY KEY (management_server_id, host_id, vm_id),
  FOREIGN KEY (management_server_id, host_id) REFERENCES fabric_hosts (management_server_id, host_id),
  FOREIGN KEY (management_server_id, cloud_id) REFERENCES fabric_clouds (management_server_id, cloud_id)
);
CREATE INDEX fabric_vms_cloud ON fabric_vms (management_server_id, cloud_id);
CREATE INDEX fabric_vms_vm ON fabric_vms (management_server_id, vm_id);

-- Site Recovery's protection container mapping: primary cloud -> recovery cloud, with a policy.
CREATE TABLE cloud_pairings (
  pairing_id                    text PRIMARY KEY,
  primary_management_server_id  text NOT NULL,
  primary_cloud_id              text NOT NULL,
  recovery_management_server_id text NOT NULL,
  recovery_cloud_id             text NOT NULL,
  policy_id                     text NOT NULL REFERENCES replication_policies (policy_id) ON DELETE RESTRICT,
  created_at                    timestamptz NOT NULL DEFAULT now(),
  CHECK ((primary_management_server_id, primary_cloud_id)
         <> (recovery_management_server_id, recovery_cloud_id)),
  FOREIGN KEY (primary_management_server_id, primary_cloud_id)
    REFERENCES fabric_clouds (management_server_id, cloud_id) ON DELETE RESTRICT,
  FOREIGN KEY (recovery_management_server_id, recovery_cloud_id)
    REFERENCES fabric_clouds (management_server_id, cloud_id) ON DELETE RESTRICT
);
-- A cloud is in at most one pairing, as primary or recovery: each pairing writes one row per cloud
-- here in the same transaction, and the primary key refuses a second.
CREATE TABLE cloud_pairing_clouds (
  management_server_id  text NOT NULL,
  cloud_id              text NOT NULL,
  pairing_id            text NOT NULL REFERENCES cloud_pairings (pairing_id) ON DELETE CASCADE,
  role                  text NOT NULL CHECK (role IN ('primary', 'recovery')),
  PRIMARY KEY (management_server_id, cloud_id),
  UNIQUE (pairing_id, role),
  FOREIGN KEY (management_server_id, cloud_id)
    REFERENCES fabric_clouds (management_server_id, cloud_id) ON DELETE RESTRICT
);
-- Replicated items (a later migration) reference cloud_pairings (pairing_id) ON DELETE RESTRICT: a
-- pairing that protects VMs cannot be deleted (pairings.service.ts translates the refusal).

CREATE TABLE network_mappings (
  mapping_id                    text PRIMARY KEY,
  source_management_server_id   text NOT NULL,
  source_vm_network_id          text NOT NULL,
  target_management_server_id   text NOT NULL,
  target_vm_network_id          text NOT NULL,
  created_at                    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source_management_server_id, source_vm_network_id),
  FOREIGN KEY (source_management_server_id, source_vm_network_id)
    REFERENCES fabric_vm_networks (management_server_id, vm_network_id) ON DELETE RESTRICT,
  FOREIGN KEY (target_management_server_id, target_vm_network_id)
    REFERENCES fabric_vm_networks (management_server_id, vm_network_id) ON DELETE RESTRICT
);
CREATE INDEX network_mappings_target ON network_mappings (target_management_server_id, target_vm_network_id);

CREATE TABLE storage_mappings (
  mapping_id                    text PRIMARY KEY,
  source_management_server_id   text NOT NULL,
  source_classification         text NOT NULL,
  target_management_server_id   text NOT NULL,
  target_classification         text NOT NULL,
  created_at                    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source_management_server_id, source_classification),
  FOREIGN KEY (source_management_server_id, source_classification)
    REFERENCES fabric_storage_classifications (management_server_id, name) ON DELETE RESTRICT,
  FOREIGN KEY (target_management_server_id, target_classification)
    REFERENCES fabric_storage_classifications (management_server_id, name) ON DELETE RESTRICT
);
CREATE INDEX storage_mappings_target ON storage_mappings (target_management_server_id, target_classification);
`;

export const migration: Migration = { version: 5, name: 'fabric-and-pairings', sql: SQL };

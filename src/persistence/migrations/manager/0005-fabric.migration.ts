// The management server's fabric besides hosts and host groups (docs/design/vault.md section 6):
// clouds over host groups with their capacity, VM networks with subnets and IP pools and the clouds
// they are available in, storage classifications of the hosts' storage locations, and the inventory
// version the provider reports to the vault.
//
// The inventory version is one counter that moves whenever a statement really changes a fabric table
// (statement triggers compare the transition tables, so an UPDATE that rewrites a row with the same
// values, or only touches a host's last contact time or error, does not move it). It becomes the
// larger of version + 1 and the clock in milliseconds, so a database rebuilt or restored from a backup
// still reports a version above the one the vault holds (the vault ignores older versions).
// Rules that span rows (subnets and IP pools that overlap, clouds that cover the same host group) are
// the service's to check (src/domain/fabric); these checks are the last line.
import type { Migration } from '../migration.js';

export const migration: Migration = {
  version: 5,
  name: 'fabric',
  sql: `
CREATE TABLE clouds (
  cloud_id           text PRIMARY KEY,
  name               text NOT NULL UNIQUE,
  -- capacity the cloud offers; null = unlimited
  max_vm_count       integer CHECK (max_vm_count >= 0),
  max_memory_bytes   bigint CHECK (max_memory_bytes >= 0),
  max_storage_bytes  bigint CHECK (max_storage_bytes >= 0),
  created_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cloud_host_groups (
  cloud_id       text NOT NULL REFERENCES clouds (cloud_id) ON DELETE CASCADE,
  host_group_id  text NOT NULL REFERENCES host_groups (host_group_id) ON DELETE RESTRICT,
  PRIMARY KEY (cloud_id, host_group_id)
);
CREATE INDEX cloud_host_groups_host_group ON cloud_host_groups (host_group_id);

CREATE TABLE vm_networks (
  vm_network_id  text PRIMARY KEY,
  name           text NOT NULL UNIQUE,
  created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE vm_network_subnets (
  subnet_id      text PRIMARY KEY,
  vm_network_id  text NOT NULL REFERENCES vm_networks (vm_network_id) ON DELETE CASCADE,
  position       integer NOT NULL,
  cidr           cidr NOT NULL CHECK (family(cidr) = 4),
  gateway        inet CHECK (gateway IS NULL OR (family(gateway) = 4 AND gateway << cidr)),
  UNIQUE (vm_network_id, cidr)
);

CREATE TABLE vm_network_ip_pools (
  ip_pool_id   text PRIMARY KEY,
  subnet_id    text NOT NULL REFERENCES vm_network_subnets (subnet_id) ON DELETE CASCADE,
  name         text NOT NULL,
  range_start  inet NOT NULL CHECK (family(range_start) = 4),
  range_end    inet NOT NULL CHECK (family(range_end) = 4),
  CHECK (range_start <= range_end),
  UNIQUE (subnet_id, name)
);

-- a VM network is available to the VMs of these clouds
CREATE TABLE cloud_vm_networks (
  cloud_id       text NOT NULL REFERENCES clouds (cloud_id) ON DELETE CASCADE,
  vm_network_id  text NOT NULL REFERENCES vm_networks (vm_network_id) ON DELETE CASCADE,
  PRIMARY KEY (cloud_id, vm_network_id)
);
CREATE INDEX cloud_vm_networks_vm_network ON cloud_vm_networks (vm_network_id);

-- what a storage mapping maps: a host's replica storage location -> a classification (e.g. Gold)
CREATE TABLE storage_classifications (
  host_id         text NOT NULL REFERENCES hosts (host_id) ON DELETE CASCADE,
  location        text NOT NULL,
  classification  text NOT NULL CHECK (classification ~ '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$'),
  PRIMARY KEY (host_id, location)
);

CREATE TABLE fabric_inventory_version (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version    bigint NOT NULL CHECK (version >= 1)
);
INSERT INTO fabric_inventory_version (version)
  VALUES (greatest(1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint));

-- TG_ARGV: columns whose changes do not count (not part of the inventory)
CREATE FUNCTION fabric_inventory_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  ignored text[] := coalesce(TG_ARGV, '{}'::text[]);
  changed boolean;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    changed := true;
  ELSIF TG_OP = 'INSERT' THEN
    SELECT EXISTS (SELECT 1 FROM fabric_new) INTO changed;
  ELSIF TG_OP = 'DELETE' THEN
    SELECT EXISTS (SELECT 1 FROM fabric_old) INTO changed;
  ELSE
    -- the same number of rows before and after: a changed row shows as a new row without its old twin
    SELECT EXISTS (
      SELECT to_jsonb(n) - ignored FROM fabric_new n
      EXCEPT ALL
      SELECT to_jsonb(o) - ignored FROM fabric_old o
    ) INTO changed;
  END IF;
  IF changed THEN
    UPDATE fabric_inventory_version
       SET version = greatest(version + 1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
  END IF;
  RETURN NULL;
END
$fn$;

DO $do$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT * FROM (VALUES
      ('host_groups', ''),
      ('hosts', '''last_contact_at'', ''last_error'', ''cert_serial'', ''cert_not_after'', ''enrolled_at'''),
      ('clouds', ''),
      ('cloud_host_groups', ''),
      ('vm_networks', ''),
      ('vm_network_subnets', ''),
      ('vm_network_ip_pools', ''),
      ('cloud_vm_networks', ''),
      ('storage_classifications', '')
    ) AS v(name, ignored)
  LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS fabric_new
                    FOR EACH STATEMENT EXECUTE FUNCTION fabric_inventory_changed(%s)',
                   t.name || '_inventory_insert', t.name, t.ignored);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I
                    REFERENCING NEW TABLE AS fabric_new OLD TABLE AS fabric_old
                    FOR EACH STATEMENT EXECUTE FUNCTION fabric_inventory_changed(%s)',
                   t.name || '_inventory_update', t.name, t.ignored);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS fabric_old
                    FOR EACH STATEMENT EXECUTE FUNCTION fabric_inventory_changed(%s)',
                   t.name || '_inventory_delete', t.name, t.ignored);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %I
                    FOR EACH STATEMENT EXECUTE FUNCTION fabric_inventory_changed()',
                   t.name || '_inventory_truncate', t.name);
  END LOOP;
END
$do$;
`,
};

// The inventory version and the hosts' free space (docs/design/vault.md section 6). A host's storage
// locations report their file system's free bytes, which move with every write a replica makes; the
// host poller stores each new report, and with migration 0005's triggers every such report moved the
// inventory version, so the whole inventory went to the vault at every heartbeat while anything
// replicated. Now an update of `hosts` compares free space in steps of max(1 GiB, 1 % of the
// location's capacity): the version moves when anything else of the inventory changed or when a
// location's free space crossed into another step (so moves add up, they are not compared only with
// the last report); smaller moves reach the vault with the next change that counts.
import type { Migration } from '../migration.js';

export const migration: Migration = {
  version: 6,
  name: 'inventory-version-free-space',
  sql: `
-- a host report with each storage location's free bytes replaced by its step
CREATE FUNCTION host_inventory_for_version(report jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT CASE WHEN jsonb_typeof(report -> 'storageLocations') = 'array'
    THEN jsonb_set(report, '{storageLocations}', coalesce(
      (SELECT jsonb_agg(
                CASE WHEN jsonb_typeof(e -> 'freeBytes') = 'number'
                     THEN jsonb_set(e, '{freeBytes}', to_jsonb(floor((e ->> 'freeBytes')::numeric / greatest(
                            1073741824,
                            CASE WHEN jsonb_typeof(e -> 'capacityBytes') = 'number'
                                 THEN (e ->> 'capacityBytes')::numeric / 100 ELSE 0 END))))
                     ELSE e END
                ORDER BY i)
       FROM jsonb_array_elements(report -> 'storageLocations') WITH ORDINALITY AS x(e, i)),
      '[]'::jsonb))
    ELSE report END
$fn$;

CREATE FUNCTION fabric_hosts_update_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  ignored text[] := coalesce(TG_ARGV, '{}'::text[]);
  changed boolean;
BEGIN
  SELECT EXISTS (
    SELECT 1 FROM fabric_new n FULL JOIN fabric_old o ON n.host_id = o.host_id
    WHERE n.host_id IS NULL OR o.host_id IS NULL
       OR (to_jsonb(n) - ignored - 'host_inventory') IS DISTINCT FROM (to_jsonb(o) - ignored - 'host_inventory')
       OR host_inventory_for_version(n.host_inventory) IS DISTINCT FROM host_inventory_for_version(o.host_inventory)
  ) INTO changed;
  IF changed THEN
    UPDATE fabric_inventory_version
       SET version = greatest(version + 1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
  END IF;
  RETURN NULL;
END
$fn$;

DROP TRIGGER hosts_inventory_update ON hosts;
CREATE TRIGGER hosts_inventory_update AFTER UPDATE ON hosts
  REFERENCING NEW TABLE AS fabric_new OLD TABLE AS fabric_old
  FOR EACH STATEMENT EXECUTE FUNCTION fabric_hosts_update_changed(
    'last_contact_at', 'last_error', 'cert_serial', 'cert_not_after', 'enrolled_at');
`,
};

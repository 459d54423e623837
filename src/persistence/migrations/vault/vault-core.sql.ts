/**
 * The vault's identity, principals and monitoring tables (docs/design/vault.md sections 1-5): applied
 * by vault migration 0002. Ids are text (prefix + random), times timestamptz, secrets only as SHA-256.
 */
export const VAULT_CORE_SQL = `
CREATE TABLE vault_identity (
  singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  vault_id      text NOT NULL,
  name          text NOT NULL,
  ca_cert_pem   text NOT NULL,
  ca_key_pem    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  user_id     text PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  role        text NOT NULL CHECK (role IN ('Owner', 'Contributor', 'Operator', 'Tester', 'Reader')),
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
  token_id       text PRIMARY KEY,
  user_id        text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
  secret_sha256  bytea NOT NULL,
  label          text NOT NULL DEFAULT '',
  created_at     timestamptz NOT NULL DEFAULT now(),
  expires_at     timestamptz NOT NULL,
  revoked_at     timestamptz
);

CREATE TABLE registration_keys (
  key_id          text PRIMARY KEY,
  secret_sha256   bytea NOT NULL,
  created_by      text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL,
  used_at         timestamptz,
  used_for        text,
  superseded_at   timestamptz
);

CREATE TABLE management_servers (
  management_server_id        text PRIMARY KEY,
  name                        text NOT NULL UNIQUE,
  created_at                  timestamptz NOT NULL DEFAULT now(),
  connection_state            text NOT NULL DEFAULT 'connected'
                              CHECK (connection_state IN ('connected', 'disconnected')),
  last_heartbeat_at           timestamptz,
  heartbeat_interval_seconds  integer NOT NULL DEFAULT 10 CHECK (heartbeat_interval_seconds > 0),
  inventory_version           bigint NOT NULL DEFAULT 0
);

CREATE TABLE provider_nodes (
  management_server_id  text NOT NULL REFERENCES management_servers (management_server_id) ON DELETE CASCADE,
  node_name             text NOT NULL,
  cert_serial           text NOT NULL,
  cert_not_after        timestamptz NOT NULL,
  registered_at         timestamptz NOT NULL DEFAULT now(),
  last_heartbeat_at     timestamptz,
  provider_version      text NOT NULL DEFAULT '',
  PRIMARY KEY (management_server_id, node_name)
);

CREATE TABLE alerts (
  alert_id     bigserial PRIMARY KEY,
  kind         text NOT NULL,
  severity     text NOT NULL CHECK (severity IN ('Warning', 'Critical')),
  object_type  text NOT NULL,
  object_id    text NOT NULL,
  message      text NOT NULL,
  raised_at    timestamptz NOT NULL DEFAULT now(),
  resolved_at  timestamptz
);
-- at most one open alert of a kind per object: raising again is a no-op
CREATE UNIQUE INDEX alerts_one_open ON alerts (kind, object_type, object_id) WHERE resolved_at IS NULL;

CREATE TABLE audit_log (
  id          bigserial PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT now(),
  principal   text NOT NULL,
  action      text NOT NULL,
  object      text,
  outcome     text NOT NULL,
  request_id  text NOT NULL,
  detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
`;

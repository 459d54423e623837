// Host enrolment keys of the management server (docs/design/vault.md section 6): single-use, only the
// newest unused one is valid, they expire (at most 120 h); the secret is kept only as SHA-256.
import type { Migration } from '../migration.js';

export const migration: Migration = {
  version: 3,
  name: 'enrolment-keys',
  sql: `
CREATE TABLE enrolment_keys (
  key_id          text PRIMARY KEY,
  secret_sha256   bytea NOT NULL CHECK (length(secret_sha256) = 32),
  created_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL,
  used_at         timestamptz,
  -- the host that enrolled with the key
  used_for        text,
  superseded_at   timestamptz,
  CHECK (expires_at <= created_at + interval '120 hours')
);
`,
};

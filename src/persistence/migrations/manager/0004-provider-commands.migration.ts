// The commands the vault sent this management server's provider (docs/design/vault.md section 7): one
// row per command id, made before the command runs, so a command delivered again (a lost answer, a
// restart) runs at most once; its outcome is kept until the vault accepted it.
import type { Migration } from '../migration.js';

export const migration: Migration = {
  version: 4,
  name: 'provider-commands',
  sql: `
CREATE TABLE provider_command_runs (
  command_id     uuid PRIMARY KEY,
  kind           text NOT NULL,
  state          text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'failed')),
  result         jsonb,
  error_code     text,
  error_message  text,
  -- the vault accepted the outcome (or answered that it already had one)
  reported       boolean NOT NULL DEFAULT false,
  received_at    timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz
);
CREATE INDEX provider_command_runs_unreported ON provider_command_runs (received_at)
  WHERE state <> 'running' AND NOT reported;
`,
};

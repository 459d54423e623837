// Jobs as users see them and the provider command channel (docs/design/vault.md section 7). The
// durable queue's `jobs` table (migration 0001) runs them; `vault_jobs` is what users see, with one row
// per job, its ordered `job_tasks` (each step's persisted outcome) and `job_events`. A vault job's id
// is its queue job's id. `provider_commands` are the commands a step sends to a management server's
// provider, recorded before they can be delivered; (job_id, step) makes a re-run find the same one.
import type { Migration } from '../migration.js';

const SQL = `
CREATE TABLE vault_jobs (
  job_id               uuid PRIMARY KEY REFERENCES jobs (id),
  kind                 text NOT NULL,
  title                text NOT NULL,
  target_type          text NOT NULL,
  target_id            text NOT NULL,
  target_name          text NOT NULL DEFAULT '',
  params               jsonb NOT NULL DEFAULT '{}'::jsonb,
  state                text NOT NULL DEFAULT 'NotStarted'
                       CHECK (state IN ('NotStarted', 'InProgress', 'Succeeded', 'Failed', 'Cancelled')),
  started_by           text NOT NULL,
  -- at most one unfinished job per exclusive key (e.g. one inventory refresh per management server)
  exclusive_key        text,
  cancel_requested_at  timestamptz,
  cancel_requested_by  text,
  result               jsonb,
  error_code           text,
  error_message        text,
  created_at           timestamptz NOT NULL DEFAULT now(),
  started_at           timestamptz,
  ended_at             timestamptz,
  updated_at           timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT vault_jobs_ended_iff_final
    CHECK ((state IN ('Succeeded', 'Failed', 'Cancelled')) = (ended_at IS NOT NULL))
);
CREATE UNIQUE INDEX vault_jobs_exclusive ON vault_jobs (exclusive_key)
  WHERE exclusive_key IS NOT NULL AND state IN ('NotStarted', 'InProgress');
CREATE INDEX vault_jobs_recent ON vault_jobs (created_at DESC);
CREATE INDEX vault_jobs_target ON vault_jobs (target_type, target_id);

CREATE TABLE job_tasks (
  job_id            uuid NOT NULL REFERENCES vault_jobs (job_id) ON DELETE CASCADE,
  position          integer NOT NULL CHECK (position >= 0),
  name              text NOT NULL,
  title             text NOT NULL,
  state             text NOT NULL DEFAULT 'NotStarted'
                    CHECK (state IN ('NotStarted', 'InProgress', 'Succeeded', 'Failed', 'Cancelled')),
  progress_percent  integer NOT NULL DEFAULT 0 CHECK (progress_percent BETWEEN 0 AND 100),
  message           text NOT NULL DEFAULT '',
  -- the step's outcome, read by the steps after it (also after a re-run in another vault process)
  output            jsonb,
  runs              integer NOT NULL DEFAULT 0,
  error_code        text,
  error_message     text,
  started_at        timestamptz,
  ended_at          timestamptz,
  PRIMARY KEY (job_id, position),
  UNIQUE (job_id, name)
);

CREATE TABLE job_events (
  event_id   bigserial PRIMARY KEY,
  job_id     uuid NOT NULL REFERENCES vault_jobs (job_id) ON DELETE CASCADE,
  at         timestamptz NOT NULL DEFAULT now(),
  task_name  text,
  kind       text NOT NULL,
  message    text NOT NULL
);
CREATE INDEX job_events_of_job ON job_events (job_id, event_id);

CREATE TABLE provider_commands (
  command_id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  management_server_id  text NOT NULL REFERENCES management_servers (management_server_id) ON DELETE CASCADE,
  job_id                uuid REFERENCES vault_jobs (job_id) ON DELETE SET NULL,
  step                  text,
  kind                  text NOT NULL,
  body                  jsonb NOT NULL DEFAULT '{}'::jsonb,
  state                 text NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued', 'delivered', 'done', 'failed')),
  timeout_seconds       integer NOT NULL CHECK (timeout_seconds > 0),
  deliveries            integer NOT NULL DEFAULT 0,
  result                jsonb,
  error_code            text,
  error_message         text,
  created_at            timestamptz NOT NULL DEFAULT now(),
  delivered_at          timestamptz,
  completed_at          timestamptz,
  CONSTRAINT provider_commands_completed_iff_final
    CHECK ((state IN ('done', 'failed')) = (completed_at IS NOT NULL))
);
CREATE UNIQUE INDEX provider_commands_job_step ON provider_commands (job_id, step) WHERE job_id IS NOT NULL;
CREATE INDEX provider_commands_pending ON provider_commands (management_server_id, created_at)
  WHERE state IN ('queued', 'delivered');
`;

export const migration: Migration = { version: 4, name: 'orchestration-jobs', sql: SQL };

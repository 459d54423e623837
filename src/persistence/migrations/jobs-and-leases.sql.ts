/**
 * The durable work queue and named leases (frozen: part of migration 0001 of every component; change
 * them only with a new migration). Semantics: src/persistence/jobs/job-queue.ts and
 * src/persistence/leases/lease-store.ts.
 */
export const JOBS_AND_LEASES_SQL = `
CREATE TABLE jobs (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  queue            text NOT NULL,
  kind             text NOT NULL,
  payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
  idempotency_key  text,
  state            text NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
  attempts         integer NOT NULL DEFAULT 0,
  max_attempts     integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
  run_after        timestamptz NOT NULL DEFAULT now(),
  lease_owner      text,
  lease_expires_at timestamptz,
  result           jsonb,
  last_error       jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  finished_at      timestamptz,
  CONSTRAINT jobs_lease_iff_running
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (queue, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_ready ON jobs (queue, run_after, created_at) WHERE state = 'queued';
CREATE INDEX jobs_leased ON jobs (queue, lease_expires_at) WHERE state = 'running';

CREATE TABLE leases (
  name        text PRIMARY KEY,
  owner       text NOT NULL,
  token       bigint NOT NULL,
  expires_at  timestamptz NOT NULL,
  acquired_at timestamptz NOT NULL DEFAULT now()
);
`;

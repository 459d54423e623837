// The newest authorization lists the vault sent (docs/design/protection.md section 7): kept so that a
// host that missed them (down, unreachable, enrolled later) gets them from the reconciler
// (src/manager/protection/authorization-reconciler.ts). One row; the newest revision wins.
import type { Migration } from '../migration.js';

export const migration: Migration = {
  version: 8,
  name: 'authorization-lists',
  sql: `
CREATE TABLE authorization_lists (
  singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  revision     bigint NOT NULL CHECK (revision >= 1),
  body         jsonb NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now()
);
`,
};

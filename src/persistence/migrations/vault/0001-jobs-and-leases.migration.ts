// The vault's first migration: the work queue of its orchestration jobs and named leases.
import { JOBS_AND_LEASES_SQL } from '../jobs-and-leases.sql.js';
import type { Migration } from '../migration.js';

export const migration: Migration = { version: 1, name: 'jobs-and-leases', sql: JOBS_AND_LEASES_SQL };

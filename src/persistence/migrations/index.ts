/**
 * Every migration of every component, in order. Add a new migration file to its folder and to its
 * list here; migrations.test.ts fails when the two disagree.
 */
import type { Component, Migration } from './migration.js';
import { migration as manager0001 } from './manager/0001-jobs-and-leases.migration.js';
import { migration as manager0002 } from './manager/0002-hosts.migration.js';
import { migration as manager0003 } from './manager/0003-enrolment-keys.migration.js';
import { migration as manager0004 } from './manager/0004-provider-commands.migration.js';
import { migration as manager0005 } from './manager/0005-fabric.migration.js';
import { migration as manager0006 } from './manager/0006-inventory-version-free-space.migration.js';
import { migration as manager0007 } from './manager/0007-management-vm.migration.js';
import { migration as manager0008 } from './manager/0008-authorization-lists.migration.js';
import { migration as manager0009 } from './manager/0009-host-certificate-in-inventory.migration.js';
import { migration as vault0001 } from './vault/0001-jobs-and-leases.migration.js';
import { migration as vault0002 } from './vault/0002-vault-core.migration.js';
import { migration as vault0003 } from './vault/0003-replication-policies.migration.js';
import { migration as vault0004 } from './vault/0004-orchestration-jobs.migration.js';
import { migration as vault0005 } from './vault/0005-fabric-and-pairings.migration.js';
import { migration as vault0006 } from './vault/0006-replicated-items.migration.js';
import { migration as vault0007 } from './vault/0007-management-vm.migration.js';
import { migration as vault0008 } from './vault/0008-provider-next-certificate.migration.js';
import { migration as vault0009 } from './vault/0009-fabric-host-certificate.migration.js';

export const MIGRATIONS: Readonly<Record<Component, readonly Migration[]>> = {
  vault: [vault0001, vault0002, vault0003, vault0004, vault0005, vault0006, vault0007, vault0008, vault0009],
  manager: [
    manager0001,
    manager0002,
    manager0003,
    manager0004,
    manager0005,
    manager0006,
    manager0007,
    manager0008,
    manager0009,
  ],
};

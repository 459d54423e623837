import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { MIGRATIONS } from './index.js';
import { validateMigrationList } from './migration-runner.js';
import type { Component } from './migration.js';

test('every migration file is in its component list, in order, and the lists are well formed', () => {
  for (const component of Object.keys(MIGRATIONS) as Component[]) {
    const files = readdirSync(new URL(`./${component}/`, import.meta.url))
      .filter((f) => f.endsWith('.migration.ts'))
      .sort();
    const listed = MIGRATIONS[component].map(
      (m) => `${String(m.version).padStart(4, '0')}-${m.name}.migration.ts`,
    );
    assert.deepEqual(
      listed,
      files,
      `${component}: src/persistence/migrations/index.ts and the folder disagree`,
    );
    validateMigrationList(component, MIGRATIONS[component]);
  }
});

test('a list with a gap or a bad name is refused', () => {
  const sql = 'SELECT 1';
  assert.throws(
    () =>
      validateMigrationList('vault', [
        { version: 1, name: 'a', sql },
        { version: 3, name: 'b', sql },
      ]),
    { code: 'SECONDSITE_ERR_INTERNAL' },
  );
  assert.throws(() => validateMigrationList('vault', [{ version: 1, name: 'Bad Name', sql }]), {
    code: 'SECONDSITE_ERR_INTERNAL',
  });
});

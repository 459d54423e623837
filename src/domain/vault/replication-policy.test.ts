import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_POLICY_SETTINGS,
  absolutePathProblem,
  formatCopyFrequency,
  mergePolicyUpdate,
  normalizeStartAt,
  policyDifferences,
  replicationPolicyProblems,
  samePolicySettings,
  validateReplicationPolicy,
  type ReplicationPolicySettings,
} from './replication-policy.js';

const base = DEFAULT_POLICY_SETTINGS;
const problems = (s: Partial<ReplicationPolicySettings>): string[] =>
  replicationPolicyProblems({ ...base, ...s }).map((p) => `${p.field}: ${p.message}`);

test('the defaults are valid: 5 min, 24 h, app-consistent off, compression, port 8084, network now, automatic resync', () => {
  assert.deepEqual(problems({}), []);
  assert.deepEqual(validateReplicationPolicy(base), { ...base, resyncWindow: undefined });
});

test('copy frequency: 30 s, 5 min, 15 min or continuous only', () => {
  for (const ok of [0, 30, 300, 900])
    assert.deepEqual(problems({ copyFrequencySeconds: ok }), [], String(ok));
  for (const bad of [1, 60, 299, 3600, -30, 30.5]) {
    const p = problems({ copyFrequencySeconds: bad });
    assert.equal(p.length, 1, String(bad));
    assert.match(p[0] ?? '', /^copyFrequencySeconds: copy frequency is 30, 300 or 900 seconds .* not /);
  }
  assert.equal(formatCopyFrequency(0), 'continuous');
  assert.equal(formatCopyFrequency(30), '30 s');
  assert.equal(formatCopyFrequency(900), '15 min');
});

test('retention: whole hours from 0 to 720', () => {
  for (const ok of [0, 1, 24, 720]) assert.deepEqual(problems({ retentionHours: ok }), [], String(ok));
  for (const bad of [-1, 721, 1.5]) {
    assert.match(
      problems({ retentionHours: bad }).join(),
      /retentionHours: recovery point retention is a whole number of hours from 0 \(latest point only\) to 720, not/,
    );
  }
});

test('app-consistent frequency: 0 or 1-12 h, and less than the retention when there is one', () => {
  for (const ok of [0, 1, 12])
    assert.deepEqual(problems({ appConsistentFrequencyHours: ok, retentionHours: 24 }), []);
  for (const bad of [-1, 13, 0.5]) {
    assert.match(
      problems({ appConsistentFrequencyHours: bad }).join(),
      /app-consistent frequency is 0 \(off\) or a whole number of hours from 1 to 12, not/,
    );
  }
  assert.deepEqual(problems({ appConsistentFrequencyHours: 4, retentionHours: 2 }), [
    'appConsistentFrequencyHours: app-consistent frequency (4 h) must be less than the retention (2 h): raise the retention or lower the frequency',
  ]);
  assert.match(
    problems({ appConsistentFrequencyHours: 2, retentionHours: 2 }).join(),
    /\(2 h\) must be less than the retention \(2 h\)/,
  );
  assert.deepEqual(problems({ appConsistentFrequencyHours: 1, retentionHours: 2 }), []);
  // retention 0 keeps only the latest point: no ordering rule
  assert.deepEqual(problems({ appConsistentFrequencyHours: 12, retentionHours: 0 }), []);
});

test('replication port 1-65535', () => {
  for (const ok of [1, 8084, 65535]) assert.deepEqual(problems({ replicationPort: ok }), []);
  for (const bad of [0, 65536, -1, 80.5])
    assert.match(
      problems({ replicationPort: bad }).join(),
      /replicationPort: the replication port is a whole number from 1 to 65535/,
    );
});

test('offline initial replication needs absolute export and import paths; network takes none', () => {
  const offline = { initialReplicationMethod: 'offline' as const };
  assert.deepEqual(
    problems({ ...offline, offlineExportPath: '/srv/export', offlineImportPath: '/srv/import' }),
    [],
  );
  assert.deepEqual(problems(offline), [
    'offlineExportPath: offline initial replication needs an export path (an absolute path)',
    'offlineImportPath: offline initial replication needs an import path (an absolute path)',
  ]);
  assert.deepEqual(
    problems({ ...offline, offlineExportPath: 'relative/dir', offlineImportPath: '/srv/../etc' }),
    [
      "offlineExportPath: the offline export path 'relative/dir' is not an absolute path (it must start with /)",
      "offlineImportPath: the offline import path '/srv/../etc' has an empty, '.' or '..' segment; give the path in plain form, e.g. /srv/secondsite/export",
    ],
  );
  assert.match(
    problems({ offlineExportPath: '/srv/x' }).join(),
    /offlineExportPath is for offline initial replication only/,
  );
  assert.match(
    problems({ initialReplicationMethod: 'tape' as 'network' }).join(),
    /initial replication method is 'network' or 'offline'/,
  );
  assert.equal(absolutePathProblem('/'), null);
  assert.equal(absolutePathProblem('/a/b'), null);
  assert.match(absolutePathProblem('/a//b') ?? '', /empty/);
  assert.match(absolutePathProblem('/a/b/') ?? '', /empty/);
  assert.match(absolutePathProblem('/a/\u0001') ?? '', /control character/);
  assert.match(absolutePathProblem(`/${'x'.repeat(5000)}`) ?? '', /longer than 4096/);
});

test("start time: 'now' or ISO 8601 with a zone, normalized to UTC", () => {
  assert.equal(normalizeStartAt('now'), 'now');
  assert.equal(normalizeStartAt('2026-11-23T22:00:00Z'), '2026-11-23T22:00:00.000Z');
  assert.equal(normalizeStartAt('2026-11-23T22:00+02:00'), '2026-11-23T20:00:00.000Z');
  assert.equal(normalizeStartAt('2026-11-23T22:00:00.5-0130'), '2026-11-23T23:30:00.500Z');
  for (const bad of [
    '2026-11-23T22:00:00',
    '2026-11-23',
    'tomorrow',
    '2026-02-30T00:00Z',
    '2026-11-23T24:00Z',
    '2026-13-01T00:00Z',
    '',
  ]) {
    assert.equal(normalizeStartAt(bad), null, bad);
    assert.match(
      problems({ initialReplicationStartAt: bad }).join(),
      /initialReplicationStartAt: the initial replication start is 'now' or an ISO 8601 time with a zone/,
      bad,
    );
  }
  assert.equal(
    validateReplicationPolicy({ ...base, initialReplicationStartAt: '2026-11-23T22:00+02:00' })
      .initialReplicationStartAt,
    '2026-11-23T20:00:00.000Z',
  );
});

test('resync: a window only, and always, with mode window, parsed by resync-policy', () => {
  assert.deepEqual(problems({ resyncMode: 'manual' }), []);
  assert.deepEqual(problems({ resyncMode: 'window', resyncWindow: '22:00-06:00' }), []);
  assert.match(
    problems({ resyncMode: 'window' }).join(),
    /resync mode 'window' needs a resync window HH:MM-HH:MM/,
  );
  assert.match(
    problems({ resyncMode: 'window', resyncWindow: '25:00-06:00' }).join(),
    /resyncWindow: resync window '25:00-06:00' is not HH:MM-HH:MM/,
  );
  assert.match(problems({ resyncMode: 'window', resyncWindow: '06:00-06:00' }).join(), /is empty/);
  assert.match(
    problems({ resyncWindow: '22:00-06:00' }).join(),
    /a resync window is used only with resync mode 'window', not 'automatic'/,
  );
  assert.match(
    problems({ resyncMode: 'sometimes' as 'manual' }).join(),
    /resync mode is automatic, manual, window/,
  );
  assert.equal(
    validateReplicationPolicy({ ...base, resyncMode: 'window', resyncWindow: ' 22:00-06:00 ' }).resyncWindow,
    '22:00-06:00',
  );
});

test('description at most 1000 characters; validate lists every problem in one error', () => {
  assert.match(problems({ description: 'x'.repeat(1001) }).join(), /at most 1000/);
  assert.throws(
    () => validateReplicationPolicy({ ...base, copyFrequencySeconds: 7, replicationPort: 0 }),
    (e: unknown) => {
      const err = e as { code: string; message: string; details: { problems: string[] } };
      assert.equal(err.code, 'SECONDSITE_ERR_INVALID_ARGUMENT');
      assert.match(err.message, /^invalid replication policy: copyFrequencySeconds: .*; replicationPort: /);
      assert.equal(err.details.problems.length, 2);
      return true;
    },
  );
});

test('updates merge; switching away from window or offline drops what only they use', () => {
  const offlineWindow: ReplicationPolicySettings = {
    ...base,
    initialReplicationMethod: 'offline',
    offlineExportPath: '/e',
    offlineImportPath: '/i',
    resyncMode: 'window',
    resyncWindow: '22:00-06:00',
  };
  assert.deepEqual(mergePolicyUpdate(offlineWindow, { retentionHours: 48 }), {
    ...offlineWindow,
    retentionHours: 48,
  });
  const back = mergePolicyUpdate(offlineWindow, {
    initialReplicationMethod: 'network',
    resyncMode: 'manual',
  });
  assert.deepEqual(replicationPolicyProblems(back), []);
  assert.equal(back.offlineExportPath, undefined);
  assert.equal(back.resyncWindow, undefined);
  // giving a window with another mode is still refused
  const mixed = mergePolicyUpdate(offlineWindow, { resyncMode: 'manual', resyncWindow: '01:00-02:00' });
  assert.match(problems(mixed).join(), /used only with resync mode 'window'/);
  assert.ok(samePolicySettings(base, { ...base }));
  assert.deepEqual(policyDifferences(base, { ...base, compression: false, retentionHours: 1 }), [
    'retentionHours',
    'compression',
  ]);
});

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { renderErrorsDoc } from './errors-doc.js';
import { ERROR_REGISTRY, SecondsiteError } from './errors.js';

test('every code is SECONDSITE_ERR_* with a status, a retry class and a summary', () => {
  for (const [code, spec] of Object.entries(ERROR_REGISTRY)) {
    assert.match(code, /^SECONDSITE_ERR_[A-Z_]+$/);
    assert.ok(spec.httpStatus >= 400 && spec.httpStatus < 600, code);
    assert.ok(['permanent', 'transient'].includes(spec.retry), code);
    assert.ok(spec.summary.endsWith('.'), code);
  }
});

test('docs/reference/errors.md matches the registry (run npm run docs:errors)', () => {
  const doc = readFileSync(new URL('../../docs/reference/errors.md', import.meta.url), 'utf8');
  assert.equal(doc, renderErrorsDoc());
});

test('SecondsiteError serializes code, message, retry class and details', () => {
  const e = new SecondsiteError('SECONDSITE_ERR_STALE_EPOCH', 'epoch 3 < 4', { epoch: 3 });
  assert.deepEqual(e.toJSON(), {
    code: 'SECONDSITE_ERR_STALE_EPOCH',
    message: 'epoch 3 < 4',
    retry: 'permanent',
    details: { epoch: 3 },
  });
});

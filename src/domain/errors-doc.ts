import { ERROR_REGISTRY } from './errors.js';

/** Renders docs/reference/errors.md from the registry (kept in sync by errors.test.ts). */
export function renderErrorsDoc(): string {
  const lines = [
    '# Error codes',
    '',
    'Generated from `src/domain/errors.ts` by `npm run docs:errors`; a test fails when this file is stale.',
    '',
    '`transient` errors may succeed when retried later; `permanent` ones need a change by a person.',
    '',
    '| code | HTTP | retry | meaning |',
    '|---|---|---|---|',
  ];
  for (const [code, spec] of Object.entries(ERROR_REGISTRY)) {
    lines.push(`| \`${code}\` | ${spec.httpStatus} | ${spec.retry} | ${spec.summary} |`);
  }
  return `${lines.join('\n')}\n`;
}

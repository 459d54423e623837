/**
 * Prints the tables of a bench result file as Markdown (medians, with the individual runs in brackets,
 * then the targets), plus the machine and the notes, for docs/benchmarks.md.
 *
 *   node --import tsx bench/tools/results-to-markdown.ts [bench/results/last-full-run.json]
 */
import { readFileSync } from 'node:fs';
import { renderSuiteMarkdown } from '../lib/report.js';
import type { SuiteResult } from '../lib/suite.js';

const file = process.argv[2] ?? new URL('../results/last-full-run.json', import.meta.url).pathname;
const doc = JSON.parse(readFileSync(file, 'utf8')) as {
  startedAt: string;
  finishedAt: string;
  machine: Record<string, unknown>;
  options: Record<string, number>;
  results: SuiteResult[];
  failures: string[];
};
const out: string[] = [
  `Run ${doc.startedAt} .. ${doc.finishedAt}; options ${JSON.stringify(doc.options)}`,
  '',
  `Machine: ${JSON.stringify(doc.machine)}`,
  '',
];
for (const r of doc.results) {
  out.push(`### ${r.suite}: ${r.title}`, '', renderSuiteMarkdown(r));
  for (const n of r.notes) out.push(`- ${n}`);
  out.push('');
}
for (const f of doc.failures) out.push(`- FAILED: ${f}`);
process.stdout.write(`${out.join('\n')}\n`);

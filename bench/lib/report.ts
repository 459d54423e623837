/** Plain-text tables for a suite result: the medians per contender, then every target with its verdict. */
import { formatValue } from './nbd-matrix.js';
import type { SuiteResult } from './suite.js';

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function renderSuite(r: SuiteResult): string {
  const out: string[] = [`== ${r.suite}: ${r.title}`, ''];
  const header = ['measurement', 'unit', ...r.contenders];
  const rows = r.measurements.map((m) => [
    m.name,
    m.unit,
    ...r.contenders.map((c) => {
      const n = m.samples[c]?.length ?? 0;
      return `${formatValue(m.medians[c] ?? Number.NaN)}${n > 1 ? ` (n=${n})` : ''}`;
    }),
  ]);
  out.push(table(header, rows), '');
  if (r.targets.length > 0) {
    const trows = r.targets.map((t) => [
      t.measurement,
      t.description,
      Number.isFinite(t.ratio) ? `${t.ratio.toFixed(2)}x` : '-',
      t.kind,
      t.pass ? 'PASS' : 'MISS',
    ]);
    out.push(table(['measurement', 'target', 'ratio', 'kind', 'verdict'], trows), '');
    const must = r.targets.filter((t) => t.kind === 'must');
    const missed = must.filter((t) => !t.pass).length;
    out.push(
      `must-targets: ${must.length - missed}/${must.length} PASS${missed > 0 ? `, ${missed} MISS` : ''}`,
    );
  }
  for (const n of r.notes) out.push(`note: ${n}`);
  return out.join('\n');
}

function mdTable(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** The same tables as renderSuite, as Markdown (for docs/benchmarks.md). */
export function renderSuiteMarkdown(r: SuiteResult): string {
  const out: string[] = [];
  out.push(
    mdTable(
      ['measurement', 'unit', ...r.contenders],
      r.measurements.map((m) => [
        m.name,
        m.unit,
        ...r.contenders.map((c) => {
          const s = m.samples[c] ?? [];
          const med = formatValue(m.medians[c] ?? Number.NaN);
          return s.length > 1 ? `${med} (${s.map(formatValue).join(' / ')})` : med;
        }),
      ]),
    ),
    '',
  );
  if (r.targets.length > 0) {
    out.push(
      mdTable(
        ['measurement', 'target', 'ratio', 'kind', 'verdict'],
        r.targets.map((t) => [
          t.measurement,
          t.description,
          Number.isFinite(t.ratio) ? `${t.ratio.toFixed(2)}x` : '-',
          t.kind,
          t.pass ? 'PASS' : '**MISS**',
        ]),
      ),
      '',
    );
  }
  return out.join('\n');
}

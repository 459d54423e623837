/**
 * A small Prometheus registry: counters and gauges with labels, rendered in the text exposition format
 * (version 0.0.4) for `/metrics`. Values are read at scrape time through collectors, so hot paths only
 * bump plain numbers.
 */
export type MetricType = 'counter' | 'gauge';

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  help: string;
  type: MetricType;
  collect: () => Sample[];
}

export class MetricsRegistry {
  private readonly families = new Map<string, Family>();

  /** Registers a metric whose samples are computed at scrape time. Names must be unique. */
  register(name: string, help: string, type: MetricType, collect: () => Sample[]): void {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new RangeError(`invalid metric name ${name}`);
    if (this.families.has(name)) throw new RangeError(`metric ${name} registered twice`);
    this.families.set(name, { name, help, type, collect });
  }

  render(): string {
    const out: string[] = [];
    for (const f of this.families.values()) {
      out.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
      out.push(`# TYPE ${f.name} ${f.type}`);
      for (const s of f.collect()) {
        const labels = Object.entries(s.labels)
          .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
          .join(',');
        out.push(`${f.name}${labels ? `{${labels}}` : ''} ${formatValue(s.value)}`);
      }
    }
    return `${out.join('\n')}\n`;
  }
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MetricsRegistry } from './metrics.js';

test('renders counters and gauges with escaped labels in Prometheus text format', () => {
  const r = new MetricsRegistry();
  let bytes = 0;
  r.register('secondsite_replication_bytes_sent_total', 'Bytes sent', 'counter', () => [
    { labels: { relationship: 'vm "a"' }, value: bytes },
  ]);
  r.register('secondsite_up', 'Agent is up', 'gauge', () => [{ labels: {}, value: 1 }]);
  bytes = 4096;
  assert.equal(
    r.render(),
    [
      '# HELP secondsite_replication_bytes_sent_total Bytes sent',
      '# TYPE secondsite_replication_bytes_sent_total counter',
      'secondsite_replication_bytes_sent_total{relationship="vm \\"a\\""} 4096',
      '# HELP secondsite_up Agent is up',
      '# TYPE secondsite_up gauge',
      'secondsite_up 1',
      '',
    ].join('\n'),
  );
});

test('refuses bad and duplicate names', () => {
  const r = new MetricsRegistry();
  r.register('a_b', 'x', 'gauge', () => []);
  assert.throws(() => r.register('a_b', 'x', 'gauge', () => []));
  assert.throws(() => r.register('9bad', 'x', 'gauge', () => []));
});

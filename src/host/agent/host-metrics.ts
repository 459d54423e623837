/**
 * Prometheus metrics of replication, read at scrape time from the services' reports:
 * primary side per relationship (lag, bytes, cycles, health) and replica side per store (points, lag).
 */
import type { MetricsRegistry, Sample } from '../../observability/metrics.js';
import type { RelationshipView } from './relationship-service.js';
import type { ReplicaSummary } from './replica-service.js';

const HEALTH_VALUE = { Normal: 0, Warning: 1, Critical: 2 } as const;

export function registerReplicationMetrics(
  registry: MetricsRegistry,
  relationships: () => RelationshipView[],
  replicas: () => ReplicaSummary[],
): void {
  const perRel = (value: (v: RelationshipView) => number | null): (() => Sample[]) => {
    return () =>
      relationships().flatMap((v) => {
        const x = value(v);
        return x === null ? [] : [{ labels: { relationship: v.definition.relationshipId }, value: x }];
      });
  };
  registry.register(
    'secondsite_replication_lag_seconds',
    'Primary side: now minus the cut time of the last committed recovery point.',
    'gauge',
    perRel((v) => (v.report.lagMs === null ? null : v.report.lagMs / 1000)),
  );
  registry.register(
    'secondsite_replication_wire_bytes_sent_total',
    'Primary side: bytes sent on the replication link (after compression), since the agent started.',
    'counter',
    perRel((v) => v.report.bytes.wireSent),
  );
  registry.register(
    'secondsite_replication_logical_bytes_sent_total',
    'Primary side: disk bytes shipped (before compression), since the agent started.',
    'counter',
    perRel((v) => v.report.bytes.logicalSent),
  );
  registry.register('secondsite_replication_cycles_total', 'Primary side: cycles by result.', 'counter', () =>
    relationships().flatMap((v) =>
      (['ok', 'failed', 'missed'] as const).map((result) => ({
        labels: { relationship: v.definition.relationshipId, result },
        value: v.report.cycles[result],
      })),
    ),
  );
  registry.register(
    'secondsite_replication_health',
    'Primary side: health of the relationship (0 Normal, 1 Warning, 2 Critical).',
    'gauge',
    perRel((v) => HEALTH_VALUE[v.report.health.level]),
  );
  registry.register(
    'secondsite_replication_throughput_bytes_per_second',
    'Primary side: logical bytes per second of the last completed cycle.',
    'gauge',
    perRel((v) => v.report.throughputBytesPerSec),
  );
  registry.register('secondsite_replica_points', 'Replica side: retained recovery points.', 'gauge', () =>
    replicas().map((r) => ({ labels: { relationship: r.relationshipId }, value: r.points })),
  );
  registry.register(
    'secondsite_replica_lag_seconds',
    'Replica side: now minus the cut time of the latest point.',
    'gauge',
    () =>
      replicas().flatMap((r) =>
        r.latestCutWallMs === null
          ? []
          : [{ labels: { relationship: r.relationshipId }, value: (Date.now() - r.latestCutWallMs) / 1000 }],
      ),
  );
  registry.register(
    'secondsite_replica_epoch',
    'Replica side: generation of the relationship.',
    'gauge',
    () => replicas().map((r) => ({ labels: { relationship: r.relationshipId }, value: r.epoch })),
  );
  const perReplica = (value: (r: ReplicaSummary) => number): (() => Sample[]) => {
    return () => replicas().map((r) => ({ labels: { relationship: r.relationshipId }, value: value(r) }));
  };
  registry.register(
    'secondsite_replica_undo_files',
    'Replica side: undo files of the retained points.',
    'gauge',
    perReplica((r) => r.undo.files),
  );
  registry.register(
    'secondsite_replica_undo_longest_list_files',
    'Replica side: undo files of the point with the longest list (compaction keeps it near log2 of its cycles).',
    'gauge',
    perReplica((r) => r.undo.longestList),
  );
  registry.register(
    'secondsite_replica_undo_background_errors_total',
    'Replica side: failed undo punches and compaction steps since the store was opened (retried later; see the log).',
    'counter',
    perReplica((r) => r.undo.backgroundErrors),
  );
}

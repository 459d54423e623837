/**
 * This host's part of the replication status its management server reports to the vault
 * (protocol/vault-api/replication-status.schema.ts): the relationships it runs as primary and the
 * replicas it keeps with their points. Read-only; built from the services' views.
 */
import type { ReplicationStatus } from '../../protocol/vault-api/replication-status.schema.js';
import type { RelationshipService } from './relationship-service.js';
import type { ReplicaService } from './replica-service.js';

const isoOf = (wallMs: number): string => new Date(wallMs).toISOString();

export async function hostReplicationStatus(
  hostId: string,
  relationships: RelationshipService,
  replicas: ReplicaService,
): Promise<ReplicationStatus> {
  return {
    relationships: relationships.list().map((r) => ({
      hostId,
      relationshipId: r.definition.relationshipId,
      vmId: r.definition.vmId,
      replicaHostId: r.definition.replica.hostId,
      protectionState: r.protectionState,
      health: r.report.health.level,
      healthReasons: r.report.health.reasons.slice(0, 20),
      lastPointId: r.report.lastPoint?.pointId ?? null,
      lastPointCutAt: r.report.lastPoint ? isoOf(r.report.lastPoint.cutWallMs) : null,
      lagSeconds: r.report.lagMs === null ? null : Math.round(r.report.lagMs / 100) / 10,
      waitingFor: r.waitingFor,
      lastError: r.report.lastError
        ? { code: r.report.lastError.code, message: r.report.lastError.message.slice(0, 2000) }
        : null,
    })),
    replicas: (await replicas.list()).map((v) => ({
      hostId,
      relationshipId: v.relationshipId,
      storageLocation: v.storageLocation,
      points: v.points.slice(-1000).map((p) => ({
        pointId: p.pointId,
        cutAt: isoOf(p.cutWallMs),
        consistency: p.consistency,
      })),
    })),
  };
}

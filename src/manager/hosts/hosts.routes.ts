/**
 * The management server's control routes for hosts (`secondsite manager host ...`): make an
 * enrolment key, list the enrolled hosts, poll them now, renew a host's certificate now.
 */
import { z } from 'zod';
import type { Route } from '../../control-api/control-server.js';
import { SecondsiteError } from '../../domain/errors.js';
import type { Database } from '../../persistence/database.js';
import {
  ENROLMENT_KEY_DEFAULT_HOURS,
  ENROLMENT_KEY_MAX_HOURS,
  type ManagedHostView,
} from '../../protocol/host-api/enrolment.schema.js';
import type { HostInventory } from '../../protocol/host-api/manager-peer.schema.js';
import { parseBody } from '../../protocol/host-api/schema.js';
import type { EnrolmentService } from '../enrolment/enrolment.service.js';
import type { HostCertificates } from './host-certificates.js';
import type { HostPoller } from './host-poller.js';

export interface HostsDeps {
  readonly db: Database;
  readonly enrolment: EnrolmentService;
  readonly poller: HostPoller;
  readonly hostCertificates: HostCertificates;
}

const enrolmentKeyBodySchema = z
  .object({
    expiresInHours: z.number().int().min(1).max(ENROLMENT_KEY_MAX_HOURS).default(ENROLMENT_KEY_DEFAULT_HOURS),
  })
  .strict();

interface HostRow {
  host_id: string;
  host_group_id: string | null;
  replication_address: string;
  replication_port: number;
  cert_serial: string;
  cert_not_after: Date;
  enrolled_at: Date;
  connection_state: 'connected' | 'disconnected';
  last_contact_at: Date | null;
  last_error: string | null;
  host_inventory: HostInventory | null;
}

/** Every enrolled host, with the poller's fresher contact time when it has one. */
export async function listHosts(deps: HostsDeps): Promise<ManagedHostView[]> {
  const rows = (await deps.db.query<HostRow>('SELECT * FROM hosts ORDER BY host_id')).rows;
  return rows.map((r) => {
    const contact = deps.poller.lastContactOf(r.host_id) ?? r.last_contact_at;
    return {
      hostId: r.host_id,
      hostGroupId: r.host_group_id,
      replicationAddress: r.replication_address,
      replicationPort: r.replication_port,
      certSerial: r.cert_serial,
      certNotAfter: r.cert_not_after.toISOString(),
      enrolledAt: r.enrolled_at.toISOString(),
      connectionState: r.connection_state,
      lastContactAt: contact ? contact.toISOString() : null,
      lastError: r.last_error,
      vmCount: r.host_inventory ? r.host_inventory.vms.length : null,
    };
  });
}

export function hostsRoutes(deps: HostsDeps): Route[] {
  return [
    {
      method: 'POST',
      path: '/v1/enrolment-keys',
      handler: async ({ body }) => {
        const b = parseBody(enrolmentKeyBodySchema, body, 'enrolment key request');
        return { status: 201, body: await deps.enrolment.createKey(b.expiresInHours) };
      },
    },
    { method: 'GET', path: '/v1/hosts', handler: async () => ({ body: await listHosts(deps) }) },
    {
      method: 'GET',
      path: '/v1/hosts/:hostId/inventory',
      handler: async ({ params }) => {
        const r = await deps.db.query<{ host_inventory: HostInventory | null }>(
          'SELECT host_inventory FROM hosts WHERE host_id = $1',
          [params['hostId']],
        );
        const row = r.rows[0];
        if (!row) {
          throw new SecondsiteError(
            'SECONDSITE_ERR_NOT_FOUND',
            `no enrolled host '${params['hostId'] ?? ''}'; see 'secondsite manager host list'`,
          );
        }
        return { body: row.host_inventory };
      },
    },
    {
      method: 'POST',
      path: '/v1/hosts/refresh',
      handler: async () => {
        const results = await deps.poller.refresh();
        return { body: { results, hosts: await listHosts(deps) } };
      },
    },
    {
      method: 'POST',
      path: '/v1/hosts/:hostId/certificate/renew',
      handler: async ({ params }) => ({ body: await deps.hostCertificates.renew(params['hostId'] ?? '') }),
    },
  ];
}

/**
 * Alert delivery to a webhook (issue 4; docs/design/vault.md section 5). Raising or resolving an alert
 * enqueues a delivery job in the same transaction (persistence's durable queue, queue
 * `alert-webhooks`, one job per alert and event by idempotency key), so an alert is never raised
 * without its delivery, whichever vault process raised it. A worker in every vault process POSTs
 * the alert as JSON to the configured URL; a refused or failed delivery is retried with backoff (up
 * to 8 runs), and a vault killed mid-delivery leaves a lease that another process takes over (the
 * receiver may then see a delivery twice: the `x-secondsite-delivery` header is its idempotency key).
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { SecondsiteError } from '../../domain/errors.js';
import type { Logger } from '../../observability/logger.js';
import type { Database, Queryable } from '../../persistence/database.js';
import { JobQueue } from '../../persistence/jobs/job-queue.js';
import { JobWorker } from '../../persistence/jobs/job-worker.js';
import { getAlert } from './alerts.js';

export const ALERT_WEBHOOK_QUEUE = 'alert-webhooks';
const DELIVER = 'deliver';
const DELIVERY_TIMEOUT_MS = 10_000;

export type AlertEvent = 'alert.raised' | 'alert.resolved';

interface DeliveryPayload {
  alertId: string;
  event: AlertEvent;
}

/** Enqueues the delivery of an alert event, in the caller's transaction. */
export async function enqueueAlertDelivery(tx: Queryable, alertId: string, event: AlertEvent): Promise<void> {
  await new JobQueue(tx, ALERT_WEBHOOK_QUEUE).enqueue<DeliveryPayload>(
    { kind: DELIVER, payload: { alertId, event }, idempotencyKey: `${event}:${alertId}`, maxAttempts: 8 },
    tx,
  );
}

/** The worker that delivers; with no URL configured it completes each job without sending. */
export function alertWebhookWorker(db: Database, url: string | undefined, log: Logger): JobWorker {
  return new JobWorker({
    queue: new JobQueue(db, ALERT_WEBHOOK_QUEUE),
    owner: `vault-${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`,
    notifications: db,
    leaseMs: 30_000,
    handlers: {
      [DELIVER]: async (job, ctx) => {
        const p = job.payload as DeliveryPayload;
        if (url === undefined) return { delivered: false, reason: 'no alert webhook configured' };
        const alert = await getAlert(db, p.alertId);
        if (!alert) throw new SecondsiteError('SECONDSITE_ERR_NOT_FOUND', `alert ${p.alertId} is gone`);
        const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(DELIVERY_TIMEOUT_MS)]);
        const res = await fetch(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-secondsite-event': p.event,
            'x-secondsite-delivery': `${p.event}:${p.alertId}`,
          },
          body: JSON.stringify({ event: p.event, alert }),
          signal,
        });
        await res.body?.cancel();
        if (!res.ok) {
          log.warn('alert webhook refused the delivery; it is retried', {
            url,
            status: res.status,
            alertId: p.alertId,
          });
          throw new Error(`the alert webhook answered ${res.status}`);
        }
        return { delivered: true, status: res.status };
      },
    },
    onEvent: (e) => {
      if (e.type === 'job:failed')
        log.warn('alert delivery failed', { jobId: e.job.id, attempt: e.job.attempt, error: e.error });
      if (e.type === 'worker:error') log.error('alert webhook worker error', { error: e.error });
    },
  });
}

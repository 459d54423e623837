/**
 * When protection raises an alert, and how bad it is (DESIGN.md section 6: "alerts (health Critical,
 * lost heartbeat, RPO breach)"; docs/design/vault.md section 5). Pure; the vault's monitoring applies
 * these rules in SQL over every item (src/vault/monitoring/protection-alerts.ts).
 *
 *   - `replicated-item-critical` (Critical): the item's reported replication health is Critical;
 *     resolved when it leaves Critical. Warning health raises no alert: like Site Recovery, it shows on
 *     the item (`vault item list|show`) with its reasons; the lag part of it that matters to a DR user
 *     is the RPO breach below, and a Warning that lasts turns Critical on the host (relationship-health.ts).
 *   - `rpo-breach` (Warning): the item's RPO (now minus its last point's cut time, growing while no
 *     status arrives) exceeds the threshold its policy's copy frequency gives (rpoThresholdSeconds).
 *     Warning, not Critical: the host reports Critical health when the lag passes max(1 h, 12
 *     intervals), and a site that stops reporting raises the Critical lost-heartbeat alert.
 *   - `host-disconnected`: the management server reports a host disconnected; Critical when the host
 *     holds replicated items (as primary or as replica: their replication stops), else Warning.
 */
import { SecondsiteError } from '../errors.js';
import { COPY_FREQUENCIES_SECONDS } from '../replication/copy-schedule.js';

export const REPLICATED_ITEM_CRITICAL_ALERT = 'replicated-item-critical';
export const RPO_BREACH_ALERT = 'rpo-breach';
export const HOST_DISCONNECTED_ALERT = 'host-disconnected';

export type AlertSeverity = 'Warning' | 'Critical';

export const RPO_BREACH_SEVERITY: AlertSeverity = 'Warning';

/** The RPO threshold of continuous replication (copy frequency 0). */
export const CONTINUOUS_RPO_THRESHOLD_SECONDS = 60;
/**
 * The slack over one interval a scheduled copy frequency always gets: a status reaches the vault up
 * to one heartbeat (10 s) after the point, and a cycle's transfer takes time after its cut.
 */
export const RPO_SLACK_SECONDS = 60;

/**
 * The RPO above which an item breaches its policy: two copy intervals (one missed cycle), and at
 * least one interval plus RPO_SLACK_SECONDS; continuous replication: CONTINUOUS_RPO_THRESHOLD_SECONDS.
 * 30 s -> 90 s, 5 min -> 600 s, 15 min -> 1800 s, continuous -> 60 s. Site Recovery gives Hyper-V no
 * configurable threshold (its VMware policies default to 15 min); this follows the copy frequency so
 * a 30 s policy is held to a 30 s promise.
 */
export function rpoThresholdSeconds(copyFrequencySeconds: number): number {
  if (!(COPY_FREQUENCIES_SECONDS as readonly number[]).includes(copyFrequencySeconds)) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `copy frequency ${copyFrequencySeconds} s is not one of ${COPY_FREQUENCIES_SECONDS.join(', ')}`,
    );
  }
  if (copyFrequencySeconds === 0) return CONTINUOUS_RPO_THRESHOLD_SECONDS;
  return Math.max(2 * copyFrequencySeconds, copyFrequencySeconds + RPO_SLACK_SECONDS);
}

/** Every copy frequency with its threshold (the monitor hands this table to SQL). */
export function rpoThresholdTable(): Array<{ copyFrequencySeconds: number; thresholdSeconds: number }> {
  return COPY_FREQUENCIES_SECONDS.map((f) => ({
    copyFrequencySeconds: f,
    thresholdSeconds: rpoThresholdSeconds(f),
  }));
}

/** True when an RPO breaches the threshold (strictly above it). */
export function isRpoBreach(rpoSeconds: number, copyFrequencySeconds: number): boolean {
  return rpoSeconds > rpoThresholdSeconds(copyFrequencySeconds);
}

/** A disconnected host's alert severity. */
export function hostDisconnectedSeverity(replicatedItemCount: number): AlertSeverity {
  return replicatedItemCount > 0 ? 'Critical' : 'Warning';
}

export function itemCriticalMessage(i: {
  vmName: string;
  itemId: string;
  reasons: readonly string[];
}): string {
  const why = i.reasons.length > 0 ? i.reasons.join('; ') : 'no reason reported';
  return (
    `replication of VM ${i.vmName} is Critical: ${why}; ` +
    `see 'secondsite vault item show ${i.itemId}' and act on the reasons`
  );
}

export function rpoBreachMessage(i: {
  vmName: string;
  itemId: string;
  rpoSeconds: number;
  thresholdSeconds: number;
  lastPointCutAt: string;
}): string {
  return (
    `VM ${i.vmName} breaches its RPO: the last recovery point was cut at ${i.lastPointCutAt}, ` +
    `${Math.round(i.rpoSeconds)} s ago, above the ${i.thresholdSeconds} s its policy allows; ` +
    `see 'secondsite vault item show ${i.itemId}' (health, last error) and the sites' links`
  );
}

export function hostDisconnectedMessage(h: {
  hostId: string;
  managementServerName: string;
  replicatedItemCount: number;
}): string {
  const impact =
    h.replicatedItemCount > 0
      ? `it holds ${h.replicatedItemCount} replicated item${h.replicatedItemCount === 1 ? '' : 's'} ` +
        '(as primary or replica), whose replication stops until it is back'
      : 'it holds no replicated items';
  return (
    `host ${h.hostId} of management server ${h.managementServerName} is disconnected (its management ` +
    `server cannot reach it); ${impact}; check the host and 'secondsite manager host list' there`
  );
}

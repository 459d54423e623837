/**
 * Replication policies (DESIGN.md section 6; Site Recovery's "replication policy"): the settings a
 * cloud pairing applies to every VM it protects. This file holds every rule a policy must satisfy, so
 * the API (zod schemas, protocol/vault-api/policies.schema.ts), the service and the CLI give the same
 * messages. Pure.
 *
 * Rules (Site Recovery's, with our host's wider retention):
 *   - copy frequency 30 s, 5 min, 15 min, or 0 (continuous);
 *   - recovery point retention 0 (latest only) to 720 hours (Site Recovery stopped at 24);
 *   - app-consistent frequency 0 (off) or 1-12 hours, and less than the retention when retention > 0;
 *   - replication port 1-65535 (default 8084);
 *   - initial replication over the network, or offline with an absolute export path and an absolute
 *     import path (and no paths for network); start `now` or an ISO 8601 time with a zone;
 *   - resync mode automatic / manual / window; a window (`HH:MM-HH:MM` UTC) only, and always, with
 *     mode window (resync-policy.ts parses it).
 */
import { SecondsiteError } from '../errors.js';
import { COPY_FREQUENCIES_SECONDS, isCopyFrequency } from '../replication/copy-schedule.js';
import {
  RESYNC_MODES,
  formatResyncWindow,
  parseResyncWindow,
  type ResyncMode,
} from '../replication/resync-policy.js';

export const MAX_RETENTION_HOURS = 720;
export const MAX_APP_CONSISTENT_FREQUENCY_HOURS = 12;
export const DEFAULT_REPLICATION_PORT = 8084;
export const MAX_POLICY_DESCRIPTION_CHARS = 1000;
export const MAX_OFFLINE_PATH_CHARS = 4096;
export const INITIAL_REPLICATION_METHODS = ['network', 'offline'] as const;
export type InitialReplicationMethod = (typeof INITIAL_REPLICATION_METHODS)[number];

/** A policy's settings, as stored and shown (the name is the policy's identity, not a setting). */
export interface ReplicationPolicySettings {
  readonly description: string;
  /** 0 (continuous), 30, 300 or 900. */
  readonly copyFrequencySeconds: number;
  /** Hourly recovery points kept besides the latest; 0 = latest only. */
  readonly retentionHours: number;
  /** 0 = off. */
  readonly appConsistentFrequencyHours: number;
  readonly compression: boolean;
  readonly replicationPort: number;
  readonly initialReplicationMethod: InitialReplicationMethod;
  /** Offline initial replication only: where the primary exports the disks, and the replica imports them. */
  readonly offlineExportPath?: string | undefined;
  readonly offlineImportPath?: string | undefined;
  /** 'now', or an ISO 8601 time with a zone (normalized to UTC `...Z` by validation). */
  readonly initialReplicationStartAt: string;
  readonly deleteReplicaOnDisable: boolean;
  readonly resyncMode: ResyncMode;
  /** 'HH:MM-HH:MM' UTC, with resyncMode 'window' only. */
  readonly resyncWindow?: string | undefined;
}

export const DEFAULT_POLICY_SETTINGS: ReplicationPolicySettings = {
  description: '',
  copyFrequencySeconds: 300,
  retentionHours: 24,
  appConsistentFrequencyHours: 0,
  compression: true,
  replicationPort: DEFAULT_REPLICATION_PORT,
  initialReplicationMethod: 'network',
  initialReplicationStartAt: 'now',
  deleteReplicaOnDisable: false,
  resyncMode: 'automatic',
};

/** One broken rule: the field it concerns and what to do. */
export interface PolicyProblem {
  readonly field: keyof ReplicationPolicySettings;
  readonly message: string;
}

const isInt = (n: number): boolean => Number.isInteger(n);

/** Messages for the single-field rules (the zod schemas use the same words). */
export const POLICY_RULES = {
  copyFrequency: 'copy frequency is 30, 300 or 900 seconds (30 s, 5 min, 15 min), or 0 for continuous',
  retention: `recovery point retention is a whole number of hours from 0 (latest point only) to ${MAX_RETENTION_HOURS}`,
  appConsistent: `app-consistent frequency is 0 (off) or a whole number of hours from 1 to ${MAX_APP_CONSISTENT_FREQUENCY_HOURS}`,
  port: 'the replication port is a whole number from 1 to 65535 (default 8084)',
  description: `a description is at most ${MAX_POLICY_DESCRIPTION_CHARS} characters`,
  startAt:
    "the initial replication start is 'now' or an ISO 8601 time with a zone, e.g. 2026-11-23T22:00:00Z",
} as const;

/**
 * An absolute POSIX path without `.`/`..` segments, empty segments or control characters; null when
 * it is one, else why not.
 */
export function absolutePathProblem(path: string): string | null {
  if (path.length > MAX_OFFLINE_PATH_CHARS) return `is longer than ${MAX_OFFLINE_PATH_CHARS} characters`;
  if (!path.startsWith('/')) return 'is not an absolute path (it must start with /)';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) return 'contains a control character';
  const segments = path.split('/').slice(1);
  if (path !== '/' && segments.some((s) => s === '' || s === '.' || s === '..'))
    return "has an empty, '.' or '..' segment; give the path in plain form, e.g. /srv/secondsite/export";
  return null;
}

/** 'now', or the ISO 8601 time (with a zone) normalized to UTC; null when `text` is neither. */
export function normalizeStartAt(text: string): string | null {
  const t = text.trim();
  if (t === 'now') return 'now';
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.exec(t);
  if (!m) return null;
  const [year, month, day, hour] = [m[1], m[2], m[3], m[4]].map(Number) as [number, number, number, number];
  // Date.parse rolls 2026-02-30 over to March and takes 24:00; a schedule should say what it means
  if (hour > 23 || month < 1 || month > 12 || day < 1) return null;
  if (day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return null;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

/** Every rule the settings break (empty when valid). */
export function replicationPolicyProblems(s: ReplicationPolicySettings): PolicyProblem[] {
  const out: PolicyProblem[] = [];
  const add = (field: PolicyProblem['field'], message: string): void => {
    out.push({ field, message });
  };
  if (s.description.length > MAX_POLICY_DESCRIPTION_CHARS) add('description', POLICY_RULES.description);
  if (!isCopyFrequency(s.copyFrequencySeconds))
    add('copyFrequencySeconds', `${POLICY_RULES.copyFrequency}, not ${s.copyFrequencySeconds}`);
  const retentionOk =
    isInt(s.retentionHours) && s.retentionHours >= 0 && s.retentionHours <= MAX_RETENTION_HOURS;
  if (!retentionOk) add('retentionHours', `${POLICY_RULES.retention}, not ${s.retentionHours}`);
  const app = s.appConsistentFrequencyHours;
  if (!isInt(app) || app < 0 || app > MAX_APP_CONSISTENT_FREQUENCY_HOURS) {
    add('appConsistentFrequencyHours', `${POLICY_RULES.appConsistent}, not ${app}`);
  } else if (retentionOk && s.retentionHours > 0 && app > 0 && app >= s.retentionHours) {
    add(
      'appConsistentFrequencyHours',
      `app-consistent frequency (${app} h) must be less than the retention (${s.retentionHours} h): raise the retention or lower the frequency`,
    );
  }
  if (!isInt(s.replicationPort) || s.replicationPort < 1 || s.replicationPort > 65535)
    add('replicationPort', `${POLICY_RULES.port}, not ${s.replicationPort}`);
  if (!(INITIAL_REPLICATION_METHODS as readonly string[]).includes(s.initialReplicationMethod)) {
    add('initialReplicationMethod', "the initial replication method is 'network' or 'offline'");
  } else if (s.initialReplicationMethod === 'offline') {
    for (const [field, label] of [
      ['offlineExportPath', 'export path'],
      ['offlineImportPath', 'import path'],
    ] as const) {
      const path = s[field];
      if (path === undefined || path === '') {
        add(field, `offline initial replication needs an ${label} (an absolute path)`);
      } else {
        const why = absolutePathProblem(path);
        if (why) add(field, `the offline ${label} '${path.slice(0, 200)}' ${why}`);
      }
    }
  } else {
    for (const field of ['offlineExportPath', 'offlineImportPath'] as const) {
      if (s[field] !== undefined)
        add(field, `${field} is for offline initial replication only; drop it or choose 'offline'`);
    }
  }
  if (normalizeStartAt(s.initialReplicationStartAt) === null)
    add(
      'initialReplicationStartAt',
      `${POLICY_RULES.startAt}, not '${s.initialReplicationStartAt.slice(0, 100)}'`,
    );
  if (!(RESYNC_MODES as readonly string[]).includes(s.resyncMode)) {
    add('resyncMode', `the resync mode is ${RESYNC_MODES.join(', ')}`);
  } else if (s.resyncMode === 'window') {
    if (s.resyncWindow === undefined) {
      add('resyncWindow', "resync mode 'window' needs a resync window HH:MM-HH:MM in UTC, e.g. 22:00-06:00");
    } else {
      try {
        parseResyncWindow(s.resyncWindow);
      } catch (e) {
        add('resyncWindow', (e as Error).message);
      }
    }
  } else if (s.resyncWindow !== undefined) {
    add('resyncWindow', `a resync window is used only with resync mode 'window', not '${s.resyncMode}'`);
  }
  return out;
}

/**
 * The settings, normalized (start time in UTC, window as HH:MM-HH:MM), or SECONDSITE_ERR_INVALID_ARGUMENT
 * listing every broken rule.
 */
export function validateReplicationPolicy(s: ReplicationPolicySettings): ReplicationPolicySettings {
  const problems = replicationPolicyProblems(s);
  if (problems.length > 0) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `invalid replication policy: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`,
      { problems: problems.map((p) => `${p.field}: ${p.message}`) },
    );
  }
  return {
    ...s,
    initialReplicationStartAt: normalizeStartAt(s.initialReplicationStartAt) ?? 'now',
    resyncWindow:
      s.resyncWindow === undefined ? undefined : formatResyncWindow(parseResyncWindow(s.resyncWindow)),
  };
}

/**
 * Applies a partial update: fields not given keep their values. Choosing resync mode other than
 * 'window' drops the stored window, and choosing 'network' drops the offline paths, unless the
 * update gives them (then validation refuses the mix). The result is not validated yet.
 */
export function mergePolicyUpdate(
  current: ReplicationPolicySettings,
  update: Partial<ReplicationPolicySettings>,
): ReplicationPolicySettings {
  const given = Object.fromEntries(Object.entries(update).filter(([, v]) => v !== undefined));
  const merged: ReplicationPolicySettings = { ...current, ...given };
  const dropWindow =
    update.resyncMode !== undefined && update.resyncMode !== 'window' && update.resyncWindow === undefined;
  const dropPaths =
    update.initialReplicationMethod === 'network' &&
    update.offlineExportPath === undefined &&
    update.offlineImportPath === undefined;
  return {
    ...merged,
    resyncWindow: dropWindow ? undefined : merged.resyncWindow,
    offlineExportPath: dropPaths ? undefined : merged.offlineExportPath,
    offlineImportPath: dropPaths ? undefined : merged.offlineImportPath,
  };
}

/** True when two validated settings are the same policy (idempotent create). */
export function samePolicySettings(a: ReplicationPolicySettings, b: ReplicationPolicySettings): boolean {
  return policyDifferences(a, b).length === 0;
}

const SETTING_KEYS: ReadonlyArray<keyof ReplicationPolicySettings> = [
  'description',
  'copyFrequencySeconds',
  'retentionHours',
  'appConsistentFrequencyHours',
  'compression',
  'replicationPort',
  'initialReplicationMethod',
  'offlineExportPath',
  'offlineImportPath',
  'initialReplicationStartAt',
  'deleteReplicaOnDisable',
  'resyncMode',
  'resyncWindow',
];

/** The settings that differ between two policies (for the ALREADY_EXISTS message). */
export function policyDifferences(
  a: ReplicationPolicySettings,
  b: ReplicationPolicySettings,
): Array<keyof ReplicationPolicySettings> {
  return SETTING_KEYS.filter((k) => a[k] !== b[k]);
}

/** 'continuous', '30 s', '5 min', '15 min'. */
export function formatCopyFrequency(seconds: number): string {
  if (seconds === 0) return 'continuous';
  return seconds < 60 ? `${seconds} s` : `${seconds / 60} min`;
}

export { COPY_FREQUENCIES_SECONDS };

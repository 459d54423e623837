/**
 * The host agent's configuration: one schema with every default, validated once at start, then frozen.
 * It lives in `<stateDir>/host.json` (written by `secondsite host init`) and names everything the agent
 * owns: its identity, where disks and replicas live, its sockets and its replication listener.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { SecondsiteError } from '../../domain/errors.js';

const hostIdSchema = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
    'a host id is 1-63 lowercase letters, digits and inner dashes',
  );

export const authorizationEntrySchema = z.object({
  /** Identity of an allowed primary host (its certificate name); '*' is allowed only as the whole first label. */
  primaryHostId: z.string().min(1).max(253),
  /** Name of a storage location of this host (see storageLocations), never a path. */
  storageLocation: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/),
  trustGroup: z.string().max(64).default('default'),
});

export const hostConfigSchema = z
  .object({
    hostId: hostIdSchema,
    /** Folder holding this host's state: config, disks, sockets. */
    stateDir: z.string().min(1),
    /** Where VM disks live (default <stateDir>/disks-root). */
    storageRoot: z.string().min(1).optional(),
    /** Local control API (HTTP over a Unix socket, mode 0600). */
    controlSocket: z.string().optional(),
    /** NBD server for the local VM runtime (Unix socket). */
    nbdSocket: z.string().optional(),
    /** Optional loopback TCP port for Prometheus scrapes of /metrics (0 = any free port). */
    metricsPort: z.number().int().min(0).max(65535).optional(),
    replication: z
      .object({
        listenHost: z.string().default('127.0.0.1'),
        /** Replication port (the policy's "replication port"); 0 = any free port. */
        listenPort: z.number().int().min(0).max(65535).default(8084),
        /** Folder with `<hostId>.key`, `<hostId>.crt` and `ca.crt` (see `secondsite ca issue`). */
        pkiDir: z.string().optional(),
        /** Named replica storage locations of this host: name -> folder. */
        storageLocations: z.record(z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/), z.string()).default({}),
        authorization: z.array(authorizationEntrySchema).default([]),
      })
      .default({}),
  })
  .strict();

export type HostConfigInput = z.input<typeof hostConfigSchema>;

export interface HostConfig {
  readonly hostId: string;
  readonly stateDir: string;
  readonly storageRoot: string;
  readonly controlSocket: string;
  readonly nbdSocket: string;
  readonly metricsPort: number | null;
  readonly replication: {
    readonly listenHost: string;
    readonly listenPort: number;
    readonly pkiDir: string;
    readonly storageLocations: Readonly<Record<string, string>>;
    readonly authorization: ReadonlyArray<z.infer<typeof authorizationEntrySchema>>;
  };
}

/** Validates raw config and fills defaults; throws SECONDSITE_ERR_INVALID_ARGUMENT naming each bad field. */
export function compileHostConfig(raw: unknown): HostConfig {
  const parsed = hostConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_ARGUMENT',
      `host configuration is invalid: ${problems.join('; ')}. Fix host.json (or rerun 'secondsite host init').`,
      { problems },
    );
  }
  const c = parsed.data;
  const stateDir = resolve(c.stateDir);
  const config: HostConfig = {
    hostId: c.hostId,
    stateDir,
    storageRoot: resolve(c.storageRoot ?? join(stateDir, 'storage')),
    controlSocket: resolve(c.controlSocket ?? join(stateDir, 'agent.sock')),
    nbdSocket: resolve(c.nbdSocket ?? join(stateDir, 'nbd.sock')),
    metricsPort: c.metricsPort ?? null,
    replication: {
      listenHost: c.replication.listenHost,
      listenPort: c.replication.listenPort,
      pkiDir: resolve(stateDir, c.replication.pkiDir ?? 'pki'),
      storageLocations: Object.fromEntries(
        Object.entries(c.replication.storageLocations).map(([name, dir]) => [name, resolve(stateDir, dir)]),
      ),
      authorization: c.replication.authorization,
    },
  };
  return deepFreeze(config);
}

export async function loadHostConfig(stateDir: string): Promise<HostConfig> {
  const path = join(resolve(stateDir), 'host.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_NOT_FOUND',
      `no host configuration at ${path}. Run 'secondsite host init --state-dir ${stateDir} --host-id NAME' first.`,
      { path },
      { cause: e },
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new SecondsiteError('SECONDSITE_ERR_INVALID_ARGUMENT', `${path} is not valid JSON: ${String(e)}`, {
      path,
    });
  }
  return compileHostConfig({ ...(raw as object), stateDir });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

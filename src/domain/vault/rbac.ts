/**
 * Who may do what in the vault (docs/design/vault.md section 3; DESIGN.md section 4). Every API route
 * declares one action; this table says which roles and machine principals may perform it. Object
 * scope (a provider may act only for its own management server) is checked by `authorize` from the
 * management server the request names. Pure.
 */
import { SecondsiteError } from '../errors.js';

export const ROLES = ['Owner', 'Contributor', 'Operator', 'Tester', 'Reader'] as const;
export type Role = (typeof ROLES)[number];

export const ACTIONS = [
  // reading (everyone with a role)
  'vault.read',
  'fabric.read',
  'protection.read',
  'job.read',
  'alert.read',
  'audit.read',
  // users and tokens (Owner)
  'user.read',
  'user.write',
  // infrastructure and protection setup (Contributor)
  'registration-key.write',
  'management-server.write',
  'policy.write',
  'pairing.write',
  'mapping.write',
  'item.enable',
  'item.disable',
  // cancelling a job of a cancellable kind (Contributor and Operator: both start jobs)
  'job.cancel',
  // operations (Operator)
  'item.failover',
  'item.commit',
  'item.reverse',
  'item.resync',
  'item.pause',
  'alert.write',
  // drills (Tester)
  'item.test-failover',
  // machine principals
  'provider.heartbeat',
  'provider.certificate',
  'provider.inventory',
  'provider.commands',
] as const;
export type Action = (typeof ACTIONS)[number];

const READ: Action[] = ['vault.read', 'fabric.read', 'protection.read', 'job.read', 'alert.read'];
const TEST: Action[] = ['item.test-failover'];
const OPERATE: Action[] = [
  'item.failover',
  'item.commit',
  'item.reverse',
  'item.resync',
  'item.pause',
  'alert.write',
  'job.cancel',
  ...TEST,
];
const CONTRIBUTE: Action[] = [
  'registration-key.write',
  'management-server.write',
  'policy.write',
  'pairing.write',
  'mapping.write',
  'item.enable',
  'item.disable',
  'job.cancel',
];
const PROVIDER: Action[] = [
  'provider.heartbeat',
  'provider.certificate',
  'provider.inventory',
  'provider.commands',
];

const BY_ROLE: Readonly<Record<Role, ReadonlySet<Action>>> = {
  Owner: new Set(ACTIONS.filter((a) => !PROVIDER.includes(a))),
  Contributor: new Set([...READ, 'audit.read', ...CONTRIBUTE]),
  Operator: new Set([...READ, ...OPERATE]),
  Tester: new Set([...READ, ...TEST]),
  Reader: new Set(READ),
};

/** A caller as the vault authenticated it. */
export type Principal =
  | { readonly kind: 'user'; readonly userId: string; readonly name: string; readonly role: Role }
  | {
      readonly kind: 'provider';
      readonly managementServerId: string;
      readonly nodeName: string;
      /** The serial of the certificate this request presented (upper-case hex). */
      readonly certSerial: string;
    };

export function principalName(p: Principal): string {
  return p.kind === 'user'
    ? `user ${p.name} (${p.role})`
    : `provider of ${p.managementServerId} (node ${p.nodeName})`;
}

/** True when the principal may perform `action` (before object scope). */
export function allows(p: Principal, action: Action): boolean {
  return p.kind === 'user' ? BY_ROLE[p.role].has(action) : PROVIDER.includes(action);
}

/**
 * Throws SECONDSITE_ERR_FORBIDDEN unless `p` may perform `action` on an object of management server
 * `scope` (undefined: the object belongs to no management server, e.g. a policy or the vault itself).
 * A provider may act only on its own management server's objects, and only on scoped ones.
 */
export function authorize(p: Principal, action: Action, scope?: string): void {
  if (!allows(p, action)) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_FORBIDDEN',
      `${principalName(p)} may not ${action}${p.kind === 'user' ? `: ask an Owner for a role that allows it` : ''}`,
      { action },
    );
  }
  if (p.kind === 'provider' && scope !== p.managementServerId) {
    throw new SecondsiteError(
      'SECONDSITE_ERR_FORBIDDEN',
      `${principalName(p)} may act only on its own management server, not on ${scope ?? 'vault-wide objects'}`,
      { action, scope: scope ?? null },
    );
  }
}

/** The roles that allow an action (for the OpenAPI document and error hints). */
export function rolesAllowing(action: Action): Role[] {
  return ROLES.filter((r) => BY_ROLE[r].has(action));
}

/**
 * Isolated VM networks as Linux network namespaces (`ip netns`, needs root). A NIC in a namespace gets
 * its IPv4 address on the namespace's loopback interface: processes inside the namespace reach it,
 * the host's own network does not (and cannot collide with it: the same address may exist on the host
 * and in any number of namespaces). That is what a test failover needs: the test VM answers on its
 * production address without touching the production network.
 *
 * Every function is idempotent.
 */
import { execFile } from 'node:child_process';
import { SecondsiteError } from '../../domain/errors.js';

function ip(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('ip', args, { timeout: 10_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function ipOk(args: string[], allowed: RegExp | null = null): Promise<string> {
  const r = await ip(args);
  if (r.code !== 0 && !(allowed && allowed.test(r.stderr)))
    throw new SecondsiteError(
      'SECONDSITE_ERR_INVALID_STATE',
      `'ip ${args.join(' ')}' failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}; network namespaces need root and iproute2`,
      { args },
    );
  return r.stdout;
}

/** Names of the network namespaces on this machine. */
export async function listNetns(): Promise<string[]> {
  const out = await ipOk(['netns', 'list']);
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.length > 0);
}

/** Creates the namespace (if missing) with its loopback up. */
export async function ensureNetns(name: string): Promise<void> {
  if (!(await listNetns()).includes(name)) await ipOk(['netns', 'add', name], /File exists/);
  await ipOk(['-n', name, 'link', 'set', 'lo', 'up']);
}

/** Gives the namespace the address `ipv4` (on its loopback). */
export async function addNetnsAddress(name: string, ipv4: string): Promise<void> {
  await ipOk(['-n', name, 'addr', 'add', `${ipv4}/32`, 'dev', 'lo'], /File exists|already assigned/);
}

/** Removes an address added by addNetnsAddress; a no-op if the namespace or address is gone. */
export async function removeNetnsAddress(name: string, ipv4: string): Promise<void> {
  if (!(await listNetns()).includes(name)) return;
  await ipOk(['-n', name, 'addr', 'del', `${ipv4}/32`, 'dev', 'lo'], /Cannot assign|not found/i);
}

/** Deletes the namespace (processes still inside keep it alive until they exit). False if missing. */
export async function deleteNetns(name: string): Promise<boolean> {
  if (!(await listNetns()).includes(name)) return false;
  await ipOk(['netns', 'del', name], /No such file/);
  return true;
}

/** The argv prefix that runs a command inside the namespace. */
export function netnsExecPrefix(name: string): string[] {
  return ['ip', 'netns', 'exec', name];
}

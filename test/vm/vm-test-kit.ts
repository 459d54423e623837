// Shared helpers for the VM tests: an in-process NbdServer on a Unix socket serving raw image files
// (FileBlockDevice over NodeStorage), guest processes started from a config file, and a small HTTP
// client for the guest API over TCP or a Unix socket.
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileBlockDevice } from '../../src/host/block-device/file.block-device.js';
import { NbdServer } from '../../src/host/nbd/nbd-server.js';
import { NodeStorage } from '../../src/host/storage/node-storage.js';
import { spawnTsScript, type ChildHandle } from '../../src/testing/process/child-process.js';
import type { GuestConfigInput } from '../../src/guest/app/guest-config.js';
import { validateGuestLog, type GuestLogReport } from '../../src/guest/app/guest-log.validator.js';

export const MiB = 1024 * 1024;
export const GUEST_MAIN = 'src/guest/app/guest-main.ts';
export const SEED = Number(process.env.SECONDSITE_SEED ?? 20261122);
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function tempDir(prefix = 'secondsite-vm-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** An NbdServer on `<dir>/nbd.sock` whose exports are image files `<dir>/<name>.img`. */
export class DiskHost {
  readonly server = new NbdServer();
  readonly socketPath: string;
  private readonly storage = new NodeStorage();
  private readonly devices = new Map<string, FileBlockDevice>();

  private constructor(readonly dir: string) {
    this.socketPath = join(dir, 'nbd.sock');
  }

  static async start(dir: string): Promise<DiskHost> {
    const h = new DiskHost(dir);
    await h.server.listenUnix(h.socketPath);
    return h;
  }

  imagePath(name: string): string {
    return join(this.dir, `${name}.img`);
  }

  uri(name: string): string {
    return `nbd+unix:///${encodeURIComponent(name)}?socket=${this.socketPath}`;
  }

  /** Creates (or re-serves) the image file `name` of `sizeBytes` and exports it. */
  async addDisk(name: string, sizeBytes: number): Promise<string> {
    const file = await this.storage.open(this.imagePath(name), 'create');
    if ((await file.sizeBytes()) < sizeBytes) await file.truncate(sizeBytes);
    const dev = await FileBlockDevice.open(file, { sizeBytes });
    this.devices.set(name, dev);
    this.server.addExport(name, dev);
    return this.uri(name);
  }

  /** Disconnects the export's clients and closes its device (the file stays). */
  async removeDisk(name: string): Promise<void> {
    await this.server.disconnectExport(name);
    await this.devices.get(name)?.close();
    this.devices.delete(name);
  }

  async image(name: string): Promise<Buffer> {
    return readFile(this.imagePath(name));
  }

  async sha256(name: string): Promise<string> {
    return createHash('sha256')
      .update(await this.image(name))
      .digest('hex');
  }

  async validate(name: string): Promise<GuestLogReport> {
    const img = await this.image(name);
    return validateGuestLog((o, l) => Promise.resolve(img.subarray(o, o + l)), img.length);
  }

  async close(): Promise<void> {
    await this.server.close();
    for (const d of this.devices.values()) await d.close();
    this.devices.clear();
  }
}

/** Writes the config next to the disks and spawns the guest. */
export async function spawnGuest(dir: string, config: GuestConfigInput, tag = 'guest'): Promise<ChildHandle> {
  const path = join(dir, `${tag}-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(path, JSON.stringify(config));
  return spawnTsScript(GUEST_MAIN, ['--config', path], { name: `guest ${config.guestId}` });
}

export interface HttpAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** One HTTP request to the guest API over TCP (host, port) or a Unix socket. */
export function guestCall(
  to: { host: string; port: number } | { socketPath: string },
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  timeoutMs = 10_000,
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? '' : JSON.stringify(body);
    const req = request(
      { ...to, method, path, headers: { 'content-type': 'application/json' }, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            body: raw ? (JSON.parse(raw) as Record<string, unknown>) : {},
          });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(text);
  });
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

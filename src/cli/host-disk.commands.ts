/** `secondsite host disk ...`: a host's VM disks (sparse raw images served over NBD). */
import { resolve } from 'node:path';
import { formatBytes } from '../domain/units.js';
import type { DiskView } from '../protocol/host-api/disks.schema.js';
import { optionalString, parseCommandArgs, parseSizeOption, requireString } from './args.js';
import type { Command } from './command.js';
import { clientFor, defaultStateDir } from './host-client.js';

const STATE = { 'state-dir': { type: 'string' } } as const;

export function renderDisks(disks: DiskView[]): string {
  const rows = [['DISK', 'NAME', 'SIZE', 'NBD URI']];
  for (const d of disks) rows.push([d.diskId, d.name, formatBytes(d.sizeBytes), d.nbdUri]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const createHelp = `usage: secondsite host disk create DISK_ID --size SIZE [--name NAME] [--state-dir DIR] [--output json]

Creates a sparse disk image on the host's storage and serves it over NBD at once. Creating the same
disk again with the same size and name changes nothing.

  DISK_ID        1-64 letters, digits, '-' or '_' (it names the image file and the NBD export)
  --size SIZE    e.g. 512M, 10G, 2TiB (whole 512-byte sectors)
  --name NAME    a display name (default: the id)`;

const create: Command = {
  path: ['disk', 'create'],
  summary: 'create a disk and serve it over NBD',
  help: createHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      { ...STATE, size: { type: 'string' }, name: { type: 'string' } },
      createHelp,
    );
    const diskId = p.positionals[0];
    if (!diskId) return usageError(io, 'DISK_ID is missing', createHelp);
    const sizeBytes = parseSizeOption(requireString(p, 'size', createHelp), 'size');
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const d = await client.post<DiskView>('/v1/disks', {
      diskId,
      name: optionalString(p, 'name') ?? diskId,
      sizeBytes,
    });
    io.out(
      p.json ? JSON.stringify(d) : `disk ${d.diskId} (${formatBytes(d.sizeBytes)}) served at ${d.nbdUri}`,
    );
    return 0;
  },
};

const listHelp = `usage: secondsite host disk list [--state-dir DIR] [--output json]

Lists the host's disks with their sizes and NBD URIs.`;

const list: Command = {
  path: ['disk', 'list'],
  summary: 'list disks',
  help: listHelp,
  async run(args, io) {
    const p = parseCommandArgs(args, STATE, listHelp);
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const r = await client.get<{ disks: DiskView[] }>('/v1/disks');
    io.out(p.json ? JSON.stringify(r) : r.disks.length ? renderDisks(r.disks) : 'no disks');
    return 0;
  },
};

const resizeHelp = `usage: secondsite host disk resize DISK_ID --size SIZE [--force] [--state-dir DIR] [--output json]

Grows a disk. Shrinking cuts data off the end and is refused unless --force is given. Stop the VM
using the disk first: its NBD connections are closed (and may reconnect) when the disk is resized.`;

const resize: Command = {
  path: ['disk', 'resize'],
  summary: 'grow (or, with --force, shrink) a disk',
  help: resizeHelp,
  async run(args, io) {
    const p = parseCommandArgs(
      args,
      { ...STATE, size: { type: 'string' }, force: { type: 'boolean' } },
      resizeHelp,
    );
    const diskId = p.positionals[0];
    if (!diskId) return usageError(io, 'DISK_ID is missing', resizeHelp);
    const sizeBytes = parseSizeOption(requireString(p, 'size', resizeHelp), 'size');
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const d = await client.post<DiskView>(`/v1/disks/${encodeURIComponent(diskId)}/resize`, {
      sizeBytes,
      force: p.values['force'] === true,
    });
    io.out(p.json ? JSON.stringify(d) : `disk ${d.diskId} is now ${formatBytes(d.sizeBytes)}`);
    return 0;
  },
};

const delHelp = `usage: secondsite host disk delete DISK_ID [--state-dir DIR] [--output json]

Stops serving the disk and deletes its image. Deleting a disk that does not exist is not an error.`;

const del: Command = {
  path: ['disk', 'delete'],
  summary: 'delete a disk',
  help: delHelp,
  async run(args, io) {
    const p = parseCommandArgs(args, STATE, delHelp);
    const diskId = p.positionals[0];
    if (!diskId) return usageError(io, 'DISK_ID is missing', delHelp);
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const r = await client.delete<{ deleted: boolean }>(`/v1/disks/${encodeURIComponent(diskId)}`);
    io.out(
      p.json ? JSON.stringify(r) : r.deleted ? `disk ${diskId} deleted` : `disk ${diskId} did not exist`,
    );
    return 0;
  },
};

function usageError(io: { err(t: string): void }, what: string, help: string): number {
  io.err(`error: ${what}\n\n${help}`);
  return 2;
}

const exportHelp = `usage: secondsite host disk export DISK_ID --to DIR [--state-dir DIR] [--output json]

Offline initial replication, step 1: writes a sparse copy of the disk to DIR/DISK_ID.raw (only
allocated data is copied). The disk may be in use. Carry DIR to the replica host and import it there
('secondsite host replica import'), then enable replication with '--initial existing-copy': the first
cycle compares digests and sends only what changed since the export.`;

const exportDisk: Command = {
  path: ['disk', 'export'],
  summary: 'offline initial replication: write a sparse copy of a disk to a folder',
  help: exportHelp,
  async run(args, io) {
    const p = parseCommandArgs(args, { 'state-dir': { type: 'string' }, to: { type: 'string' } }, exportHelp);
    const diskId = p.positionals[0];
    if (!diskId) return usageError(io, 'DISK_ID is missing', exportHelp);
    const client = await clientFor(defaultStateDir(optionalString(p, 'state-dir')));
    const r = await client.post<{ path: string; sizeBytes: number; copiedBytes: number }>(
      `/v1/disks/${encodeURIComponent(diskId)}/export`,
      { toDir: resolve(requireString(p, 'to', exportHelp)) },
    );
    io.out(
      p.json
        ? JSON.stringify(r)
        : `${diskId} exported to ${r.path} (${formatBytes(r.copiedBytes)} of data, ${formatBytes(r.sizeBytes)} disk)`,
    );
    return 0;
  },
};

export const diskCommands: Command[] = [create, list, resize, del, exportDisk];

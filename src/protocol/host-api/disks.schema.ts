/** Control API bodies for disks (`/v1/disks`). */
import { z } from 'zod';

/** Disk ids are plain names: they name files and NBD exports, so no paths, dots or spaces. */
export const diskIdSchema = z
  .string()
  .regex(
    /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$/,
    'a disk id is 1-64 letters, digits, "-" or "_", starting with a letter or digit',
  );

export const createDiskBodySchema = z
  .object({
    diskId: diskIdSchema,
    name: z.string().min(1).max(256).optional(),
    sizeBytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  })
  .strict();

export const resizeDiskBodySchema = z
  .object({
    sizeBytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
    force: z.boolean().default(false),
  })
  .strict();

export interface DiskView {
  diskId: string;
  name: string;
  sizeBytes: number;
  createdWallMs: number;
  /** NBD export name on the host's nbd.sock. */
  exportName: string;
  /** NBD URI for local clients (qemu, nbdinfo). */
  nbdUri: string;
}

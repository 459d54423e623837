/**
 * Builds images from a history: the reference model of what the disks hold after a given epoch,
 * optionally with the next epoch partly applied (random subset of its blocks, some torn at sector
 * granularity) - exactly the states a correct recovery point may have. Tests use it to make legal
 * images and then break them on purpose.
 */
import { Rng } from '../../domain/random.js';
import {
  BLOCK_SIZE_BYTES,
  SECTOR_SIZE_BYTES,
  encodeBlock,
  encodeInitialBlock,
} from '../workload/block-format.js';
import type { HistoryOp, WriteHistory } from '../workload/write-history.js';

export interface ReplayOptions {
  /** Apply every op of epochs <= throughEpoch (default: all). */
  throughEpoch?: number;
  /** Then apply each block of epoch throughEpoch+1 with this probability (default 0 = none). */
  partialProbability?: number;
  /** Of the partly applied blocks, tear this fraction at sector granularity (default 0). */
  tearProbability?: number;
  /** Drives the random choices (trim outcome, partial subset); default new Rng(1). */
  rng?: Rng;
}

/** The block content of op `op` at block `lba`, written into `image` at `lba`. */
export function applyOpBlock(
  history: WriteHistory,
  image: Buffer,
  op: HistoryOp,
  lba: number,
  rng: Rng,
): void {
  const at = lba * BLOCK_SIZE_BYTES;
  if (op.kind === 'write') {
    encodeBlock(history.seed, { diskId: op.diskId, lba, writeId: op.writeId, epoch: op.epoch }, image, at);
  } else if (op.kind === 'zero' || rng.chance(0.5)) {
    image.fill(0, at, at + BLOCK_SIZE_BYTES);
  }
}

/** Materializes one image per disk of the history (Map diskId -> Buffer). */
export function replayHistory(history: WriteHistory, options: ReplayOptions = {}): Map<number, Buffer> {
  const rng = options.rng ?? new Rng(1);
  const through = options.throughEpoch ?? history.maxEpoch;
  const images = new Map<number, Buffer>();
  for (const d of history.header.disks) {
    const img = Buffer.alloc(d.sizeBytes);
    if (history.header.initialContent === 'pattern') {
      for (let lba = 0; lba < d.sizeBytes / BLOCK_SIZE_BYTES; lba++) {
        encodeInitialBlock(history.seed, d.diskId, lba, img, lba * BLOCK_SIZE_BYTES);
      }
    }
    images.set(d.diskId, img);
  }
  const ops = [...history.ops].sort((a, b) => a.epoch - b.epoch || a.writeId - b.writeId);
  const scratch = Buffer.alloc(BLOCK_SIZE_BYTES);
  for (const op of ops) {
    const img = images.get(op.diskId);
    if (!img) continue;
    if (op.epoch <= through) {
      for (let b = op.lba; b < op.lba + op.blocks; b++) applyOpBlock(history, img, op, b, rng);
    } else if (op.epoch === through + 1 && (options.partialProbability ?? 0) > 0) {
      for (let b = op.lba; b < op.lba + op.blocks; b++) {
        if (!rng.chance(options.partialProbability ?? 0)) continue;
        if (op.kind === 'write' && rng.chance(options.tearProbability ?? 0)) {
          encodeBlock(
            history.seed,
            { diskId: op.diskId, lba: b, writeId: op.writeId, epoch: op.epoch },
            scratch,
          );
          for (let s = 0; s < BLOCK_SIZE_BYTES / SECTOR_SIZE_BYTES; s++) {
            if (rng.chance(0.5)) {
              scratch.copy(
                img,
                b * BLOCK_SIZE_BYTES + s * SECTOR_SIZE_BYTES,
                s * SECTOR_SIZE_BYTES,
                (s + 1) * SECTOR_SIZE_BYTES,
              );
            }
          }
        } else {
          applyOpBlock(history, img, op, b, rng);
        }
      }
    }
  }
  return images;
}

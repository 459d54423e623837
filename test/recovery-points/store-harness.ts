/**
 * Test harness for the recovery-point store: an in-memory model of the disks (the truth), random
 * cycles that update the model and stage the same writes, and a verifier that reads every retained
 * point back through the store and compares it byte for byte with the model's snapshot.
 */
import assert from 'node:assert/strict';
import type { Rng } from '../../src/domain/random.js';
import type { PointStore } from '../../src/host/recovery-points/point-store.js';
import type { CycleWriter } from '../../src/host/recovery-points/replica-store.js';

export type CycleOp =
  | { kind: 'data'; diskId: string; offsetBytes: number; data: Buffer }
  | { kind: 'zero'; diskId: string; offsetBytes: number; lengthBytes: number };

export class DiskModel {
  readonly disks = new Map<string, Buffer>();
  /** pointId -> diskId -> content at that point. */
  readonly snapshots = new Map<string, Map<string, Buffer>>();

  resize(diskId: string, sizeBytes: number): void {
    const cur = this.disks.get(diskId) ?? Buffer.alloc(0);
    const next = Buffer.alloc(sizeBytes);
    cur.copy(next, 0, 0, Math.min(cur.length, sizeBytes));
    this.disks.set(diskId, next);
  }

  apply(op: CycleOp): void {
    const disk = this.disks.get(op.diskId);
    assert.ok(disk, `model has no disk ${op.diskId}`);
    if (op.kind === 'data') op.data.copy(disk, op.offsetBytes);
    else disk.fill(0, op.offsetBytes, op.offsetBytes + op.lengthBytes);
  }

  snapshot(pointId: string): void {
    const snap = new Map<string, Buffer>();
    for (const [id, buf] of this.disks) snap.set(id, Buffer.from(buf));
    this.snapshots.set(pointId, snap);
  }
}

/** Random writes and zero ranges over the model's disks: aligned and unaligned, overlapping, some large. */
export function randomCycle(rng: Rng, model: DiskModel, maxOps = 12): CycleOp[] {
  const ops: CycleOp[] = [];
  const diskIds = [...model.disks.keys()];
  const n = rng.int(maxOps + 1);
  for (let i = 0; i < n; i++) {
    const diskId = rng.pick(diskIds);
    const size = (model.disks.get(diskId) as Buffer).length;
    if (size === 0) continue;
    const aligned = rng.chance(0.6);
    const unit = aligned ? 4096 : 1;
    const maxLen = rng.chance(0.1) ? size : Math.min(size, 64 * 1024);
    let len = Math.max(1, rng.int(Math.floor(maxLen / unit) + 1) * unit);
    let off = rng.int(Math.floor(size / unit)) * unit;
    if (off + len > size) len = size - off;
    if (len <= 0) {
      off = 0;
      len = Math.min(size, unit);
    }
    if (rng.chance(0.15)) ops.push({ kind: 'zero', diskId, offsetBytes: off, lengthBytes: len });
    else {
      const data = Buffer.alloc(len);
      if (rng.chance(0.1)) data.fill(0);
      else rng.fill(data);
      ops.push({ kind: 'data', diskId, offsetBytes: off, data });
    }
  }
  for (const op of ops) model.apply(op);
  return ops;
}

/** Stages ops, syncing now and then, and sometimes sending a chunk twice (idempotence). */
export async function stage(writer: CycleWriter, ops: readonly CycleOp[], rng: Rng): Promise<void> {
  for (const op of ops) {
    if (op.kind === 'data') {
      // Split into chunks, as the sender would.
      const chunk = 1 + rng.int(op.data.length);
      for (let at = 0; at < op.data.length; at += chunk) {
        const piece = op.data.subarray(at, Math.min(at + chunk, op.data.length));
        await writer.writeChunk(op.diskId, op.offsetBytes + at, piece);
      }
    } else {
      await writer.zeroRange(op.diskId, op.offsetBytes, op.lengthBytes);
    }
    if (rng.chance(0.3)) await writer.sync();
  }
}

/** Reads every retained point of every disk through the store and compares it with the model. */
export async function verifyPoints(
  store: PointStore,
  model: DiskModel,
  label: string,
  rng?: Rng,
): Promise<void> {
  for (const p of store.points()) {
    const snap = model.snapshots.get(p.pointId);
    assert.ok(snap, `${label}: store shows point ${p.pointId} the model never committed`);
    for (const [diskId, expected] of snap) {
      if (!store.disks().some((d) => d.diskId === diskId)) continue;
      const view = await store.openPointDisk(p.pointId, diskId);
      try {
        assert.equal(view.sizeBytes, expected.length, `${label}: size of ${diskId} at ${p.pointId}`);
        const got = await view.read(0, expected.length);
        if (!got.equals(expected)) {
          let at = 0;
          while (got[at] === expected[at]) at++;
          assert.fail(`${label}: disk ${diskId} at point ${p.pointId} differs from the model at byte ${at}`);
        }
        if (rng !== undefined && expected.length > 0) {
          const off = rng.int(expected.length);
          const len = rng.int(expected.length - off + 1);
          const part = await view.read(off, len);
          assert.ok(part.equals(expected.subarray(off, off + len)), `${label}: range read at ${p.pointId}`);
          for (const e of await view.allocation(off, len)) {
            if (!e.data) {
              const zeros = expected.subarray(e.offsetBytes, e.offsetBytes + e.lengthBytes);
              assert.ok(
                zeros.every((b) => b === 0),
                `${label}: hole with data at ${p.pointId}`,
              );
            }
          }
        }
      } finally {
        await view.close();
      }
    }
  }
}

export const fixedClock = { wallMs: (): number => 1_800_000_000_000, monotonicMs: (): number => 0 };

/**
 * Digests that bind a cycle together: the plan digest (SHA-256 over the ordered plan extents) is
 * announced in CYCLE_BEGIN and checked against the PLAN frames; the cycle digest in CYCLE_END binds
 * cycle id, cut time, consistency and plan, so both sides agree on what the committed point contains.
 */
import { Buffer } from 'node:buffer';
import { createHash, webcrypto } from 'node:crypto';
import type { Hash } from 'node:crypto';
import type { Consistency, DiskExtent } from './messages.js';

/** Incremental plan digest: feed extents in plan order. */
export class PlanDigest {
  private readonly hash: Hash = createHash('sha256').update('secondsite-plan-v1');
  private readonly rec = Buffer.alloc(18);
  count = 0;

  add(e: DiskExtent): void {
    this.rec.writeUInt16BE(e.diskIndex, 0);
    this.rec.writeBigUInt64BE(BigInt(e.offsetBytes), 2);
    this.rec.writeBigUInt64BE(BigInt(e.lengthBytes), 10);
    this.hash.update(this.rec);
    this.count++;
  }

  digest(): Buffer {
    return this.hash.digest();
  }
}

export function planDigestOf(extents: readonly DiskExtent[]): Buffer {
  const d = new PlanDigest();
  for (const e of extents) d.add(e);
  return d.digest();
}

export function cycleDigestOf(c: {
  cycleId: string;
  cutWallMs: number;
  consistency: Consistency;
  planDigest: Buffer;
}): Buffer {
  return createHash('sha256')
    .update('secondsite-cycle-v1\0')
    .update(c.cycleId, 'utf8')
    .update(`\0${c.cutWallMs}\0${c.consistency}\0`)
    .update(c.planDigest)
    .digest();
}

/** SHA-256 of chunk content: the end-to-end checksum of DATA frames and the resync digest. */
export function chunkChecksum(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/**
 * `chunkChecksum` computed on the libuv threadpool (WebCrypto's digest runs there), so a sender can hash
 * chunks in parallel with compression and TLS on its main thread. Same bytes as `chunkChecksum`.
 */
export async function chunkChecksumAsync(data: Buffer): Promise<Buffer> {
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', data));
}

/**
 * Deterministic test data in 64 KiB blocks, the block mix of peers-and-limits.md section 2.5:
 *   'mix'  2 random : 1 zero : 1 text in every group of 4 (50 % incompressible, 25 % zeros, 25 % text);
 *   'data' random : text in every pair (no zero blocks; allocated data for initial-replication sources).
 * Random blocks are an AES-128-CTR keystream keyed by the block index (fast, reproducible, and
 * incompressible); text blocks are slices of the licence texts in /usr/share/common-licenses (or a
 * generated stand-in if that folder is missing), so they compress like real text (~3-4x with LZ4).
 */
import { createCipheriv } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const BLOCK_BYTES = 64 * 1024;
export type BlockPattern = 'mix' | 'data';
export type BlockKind = 'random' | 'zero' | 'text';

const KEY = Buffer.from('secondsite-bench'); // 16 bytes: AES-128
const ZEROS = Buffer.alloc(BLOCK_BYTES);
let textPool: Buffer | undefined;

function text(): Buffer {
  if (textPool) return textPool;
  const parts: Buffer[] = [];
  const dir = '/usr/share/common-licenses';
  try {
    for (const name of readdirSync(dir).sort()) {
      try {
        parts.push(readFileSync(join(dir, name)));
      } catch {
        // a sub-folder or unreadable file
      }
    }
  } catch {
    // no licence folder: fall through to the generated stand-in
  }
  let pool = Buffer.concat(parts);
  if (pool.length < 4 * BLOCK_BYTES) {
    const words =
      'the of replication disk block recovery point site primary replica host write read cycle'.split(' ');
    const out: string[] = [];
    for (let i = 0; out.join(' ').length < 8 * BLOCK_BYTES; i++)
      out.push(words[(i * 7 + (i >> 3)) % words.length] ?? '');
    pool = Buffer.from(out.join(' '));
  }
  textPool = pool;
  return pool;
}

/** A cheap integer hash (splitmix-like), so the order of kinds inside each group is irregular. */
function mixHash(n: number): number {
  let x = (n + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

const MIX_ORDERS: readonly (readonly BlockKind[])[] = [
  ['random', 'random', 'zero', 'text'],
  ['random', 'zero', 'random', 'text'],
  ['random', 'zero', 'text', 'random'],
  ['zero', 'random', 'random', 'text'],
  ['zero', 'random', 'text', 'random'],
  ['zero', 'text', 'random', 'random'],
  ['random', 'random', 'text', 'zero'],
  ['random', 'text', 'random', 'zero'],
  ['random', 'text', 'zero', 'random'],
  ['text', 'random', 'random', 'zero'],
  ['text', 'random', 'zero', 'random'],
  ['text', 'zero', 'random', 'random'],
];

/**
 * The kind of a block. The proportions are exact per group (4 blocks for 'mix', 2 for 'data') but the
 * order inside each group varies irregularly, so no fixed sampling stride (e.g. a compressor probing
 * at 1/4 steps of a chunk) lines up with one kind only.
 */
export function blockKind(blockIndex: number, pattern: BlockPattern): BlockKind {
  if (pattern === 'data') {
    const first: BlockKind = mixHash(blockIndex >>> 1) % 2 === 0 ? 'random' : 'text';
    const second: BlockKind = first === 'random' ? 'text' : 'random';
    return blockIndex % 2 === 0 ? first : second;
  }
  const order = MIX_ORDERS[mixHash(blockIndex >>> 2) % MIX_ORDERS.length] as readonly BlockKind[];
  return order[blockIndex % 4] as BlockKind;
}

/** Fills `out` (a multiple of BLOCK_BYTES, starting at a block boundary) with blocks from `firstBlock` on. */
export function fillBlocks(out: Buffer, firstBlock: number, pattern: BlockPattern): void {
  const pool = text();
  for (let i = 0; i * BLOCK_BYTES < out.length; i++) {
    const index = firstBlock + i;
    const dst = out.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES);
    const kind = blockKind(index, pattern);
    if (kind === 'zero') ZEROS.copy(dst);
    else if (kind === 'random') {
      const iv = Buffer.alloc(16);
      iv.writeUInt32BE(index, 8); // the CTR counter (low 32 bits) never reaches the next block's stream
      const c = createCipheriv('aes-128-ctr', KEY, iv);
      const n = c.update(ZEROS.subarray(0, dst.length)).copy(dst);
      if (n < dst.length) dst.fill(0, n);
    } else {
      const start = (index * 4093) % Math.max(1, pool.length - BLOCK_BYTES);
      for (let p = 0; p < dst.length;)
        p += pool.copy(dst, p, start, start + Math.min(dst.length - p, pool.length - start));
    }
  }
}

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { NodeStorage } from '../storage/node-storage.js';
import { encodeRedoRecord, encodeRedoRecordParts, scanRedoLog, type RedoMeta } from './redo-log.js';

/** A record of the first format ("SSR1", checksum sha256(meta ‖ payload)), as older agents wrote it. */
function legacyRecord(meta: RedoMeta, payload = Buffer.alloc(0)): Buffer {
  const metaBytes = Buffer.from(JSON.stringify(meta), 'utf8');
  const head = Buffer.alloc(44);
  head.writeUInt32LE(0x53535231, 0);
  head.writeUInt32LE(metaBytes.length, 4);
  head.writeUInt32LE(payload.length, 8);
  createHash('sha256').update(metaBytes).update(payload).digest().copy(head, 12);
  return Buffer.concat([head, metaBytes, payload]);
}

async function scanOf(bytes: Buffer): Promise<Awaited<ReturnType<typeof scanRedoLog>>> {
  const dir = await mkdtemp(join(tmpdir(), 'secondsite-redo-'));
  try {
    const storage = new NodeStorage();
    const file = await storage.open(join(dir, 'redo.log'), 'create');
    await file.write(bytes, 0, bytes.length, 0);
    try {
      return await scanRedoLog(file);
    } finally {
      await file.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a record encoded with the payload digest given equals the one that hashes the payload itself', () => {
  const payload = Buffer.from('chunk bytes '.repeat(1000));
  const meta: RedoMeta = { k: 'data', d: 'd0', o: 4096 };
  const own = encodeRedoRecordParts(meta, payload);
  const given = encodeRedoRecordParts(meta, payload, createHash('sha256').update(payload).digest());
  assert.ok(own.head.equals(given.head));
  assert.equal(given.payload, payload, 'the payload is not copied');
});

test('scan reads first-format (SSR1) records and current ones; a wrong payload digest ends the valid prefix', async () => {
  const a = Buffer.alloc(3000, 1);
  const b = Buffer.alloc(5000, 2);
  const log = Buffer.concat([
    legacyRecord({ k: 'head', cycleId: 'c1', epoch: 3 }),
    legacyRecord({ k: 'data', d: 'd0', o: 0 }, a),
    encodeRedoRecord({ k: 'zero', d: 'd0', o: 8192, l: 4096 }),
    encodeRedoRecord({ k: 'data', d: 'd0', o: 16384 }, b),
  ]);
  const scan = await scanOf(log);
  assert.deepEqual(scan.head, { cycleId: 'c1', epoch: 3 });
  assert.equal(scan.records, 4);
  assert.equal(scan.validBytes, log.length);
  assert.deepEqual(
    scan.entries.map((e) => [e.offsetBytes, e.lengthBytes, e.source.kind]),
    [
      [0, 3000, 'data'],
      [8192, 4096, 'zero'],
      [16384, 5000, 'data'],
    ],
  );
  const lying = encodeRedoRecordParts({ k: 'data', d: 'd0', o: 0 }, a, Buffer.alloc(32));
  const cut = await scanOf(
    Buffer.concat([log, lying.head, lying.payload, encodeRedoRecord({ k: 'zero', d: 'd0', o: 0, l: 1 })]),
  );
  assert.equal(cut.records, 4, 'the record with a wrong digest and everything after it are cut off');
  assert.equal(cut.validBytes, log.length);
});

test('an in-place log accepts base records only, and a redo log data records only', async () => {
  const inPlace = Buffer.concat([
    encodeRedoRecord({ k: 'head', cycleId: 'c1', epoch: 0, place: 'base' }),
    encodeRedoRecord({ k: 'base', d: 'd0', o: 0, l: 1 << 20 }),
    encodeRedoRecord({ k: 'data', d: 'd0', o: 0 }, Buffer.alloc(10, 1)),
  ]);
  const s1 = await scanOf(inPlace);
  assert.equal(s1.inPlace, true);
  assert.deepEqual(
    s1.entries.map((e) => [e.offsetBytes, e.lengthBytes, e.source.kind]),
    [[0, 1 << 20, 'base']],
  );
  const redo = Buffer.concat([
    encodeRedoRecord({ k: 'head', cycleId: 'c2', epoch: 0 }),
    encodeRedoRecord({ k: 'base', d: 'd0', o: 0, l: 1 << 20 }),
  ]);
  const s2 = await scanOf(redo);
  assert.equal(s2.inPlace, false);
  assert.equal(s2.records, 1, 'a base record in a redo log is not valid');
});

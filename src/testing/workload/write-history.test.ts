import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  HistoryRecorder,
  parseHistory,
  readHistoryFile,
  type HistoryHeader,
  type HistoryOp,
} from './write-history.js';

const header: HistoryHeader = {
  version: 1,
  seed: 7,
  blockSizeBytes: 4096,
  disks: [
    { diskId: 0, sizeBytes: 1 << 20 },
    { diskId: 1, sizeBytes: 1 << 20 },
  ],
  initialContent: 'zero',
  startedMs: 1,
};

function op(writeId: number, epoch: number, extra: Partial<HistoryOp> = {}): HistoryOp {
  return {
    writeId,
    epoch,
    diskId: 0,
    lba: writeId,
    blocks: 1,
    kind: 'write',
    fua: false,
    tSubmitMs: epoch * 10,
    tAckMs: null,
    ...extra,
  };
}

test('the file written batch by batch parses back to the in-memory history', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'secondsite-history-'));
  try {
    const path = join(dir, 'h.jsonl');
    const rec = new HistoryRecorder(header, { filePath: path });
    const e1 = [op(1, 1), op(2, 1, { diskId: 1, fua: true })];
    rec.submitted(e1);
    e1.forEach((o, i) => (o.tAckMs = 12 + i));
    rec.completed(e1);
    rec.flushed([
      { diskId: 0, epoch: 1, tSubmitMs: 14, tAckMs: 15 },
      { diskId: 1, epoch: 1, tSubmitMs: 14, tAckMs: 16 },
    ]);
    const e2 = [op(3, 2, { kind: 'trim', blocks: 4 })];
    rec.submitted(e2);
    e2[0]!.error = 'EIO';
    rec.completed(e2);
    rec.close();
    const back = readHistoryFile(path);
    assert.deepEqual(back.header, header);
    assert.deepEqual(back.ops, rec.history.ops);
    assert.deepEqual(back.flushes, rec.history.flushes);
    assert.deepEqual(parseHistory(rec.history.toJsonLines()).ops, rec.history.ops);
    assert.equal(back.maxEpoch, 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a torn last line (writer killed mid-write) is ignored; a bad line in the middle is an error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'secondsite-history-'));
  try {
    const path = join(dir, 'h.jsonl');
    const rec = new HistoryRecorder(header, { filePath: path });
    const ops = [op(1, 1), op(2, 1)];
    rec.submitted(ops);
    ops.forEach((o) => (o.tAckMs = 11));
    rec.completed(ops);
    rec.close();
    const text = await readFile(path, 'utf8');
    for (let cut = text.indexOf('\n') + 1; cut < text.length; cut++) {
      const h = parseHistory(text.slice(0, cut));
      assert.ok(h.ops.length <= 2, `cut at ${cut}`);
      // Never claims an ack that was not fully written.
      for (const o of h.ops) assert.ok(o.tAckMs === null || o.tAckMs === 11, `cut at ${cut}`);
    }
    const lines = text.split('\n');
    lines[1] = '{"t":"s","id":';
    await writeFile(path, lines.join('\n'));
    assert.throws(() => readHistoryFile(path), /line 2 is not JSON/);
    assert.throws(() => parseHistory(''), /no header/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('flushedEpoch(t) per disk and VM-wide (the lowest over disks)', () => {
  const rec = new HistoryRecorder(header);
  rec.flushed([
    { diskId: 0, epoch: 3, tSubmitMs: 10, tAckMs: 20 },
    { diskId: 1, epoch: 3, tSubmitMs: 10, tAckMs: 25 },
    { diskId: 0, epoch: 5, tSubmitMs: 30, tAckMs: 40 },
    { diskId: 1, epoch: 5, tSubmitMs: 30, tAckMs: null, error: 'EIO' },
  ]);
  const h = rec.history;
  assert.equal(h.flushedEpoch(19), 0);
  assert.equal(h.flushedEpoch(20, 0), 3);
  assert.equal(h.flushedEpoch(20), 0);
  assert.equal(h.flushedEpoch(25), 3);
  assert.equal(h.flushedEpoch(100, 0), 5);
  assert.equal(h.flushedEpoch(100, 1), 3);
  assert.equal(h.flushedEpoch(100), 3);
  h.addOp(op(1, 1));
  assert.throws(() => h.addOp(op(1, 1)), /recorded twice/);
});

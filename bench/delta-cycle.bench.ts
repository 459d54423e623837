/**
 * One delta cycle (goals G2a, G2c, G2d of peers-and-limits.md section 4): 1 GiB of changes in the block
 * mix (2 random : 1 zero : 1 text, 64 KiB blocks, written as 1 MiB writes at every other MiB of a 2 GiB
 * disk) shipped through our whole pipeline -- snapshot read, zero check, LZ4, SHA-256, mutual TLS over
 * loopback, the replica's PointStore write + sync + commit -- and each stage measured alone on the same
 * data in the same sitting. P_delta = changed bytes / (connect .. POINT_COMMITTED).
 *
 * Targets: P_delta >= 0.7 x the slowest stage (stretch 1.0); zero bytes reaching the compressor = 0
 * (they must be ZERO frames; counted from the sender's zeroBytes against the zeros in the changes);
 * wire bytes <= 1.02 x the compressed payload (the stage-alone compressor's output).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createBenchPki } from './lib/bench-pki.js';
import { createSparseFile } from './lib/nbd-servers.js';
import { runSender, startReplicaProcess } from './lib/replication-procs.js';
import {
  checkValue,
  measurement,
  median,
  type BenchOptions,
  type Suite,
  type TargetCheck,
} from './lib/suite.js';

const MiB = 1024 * 1024;
const CHANGES_BYTES = 1024 * MiB;
const DISK_BYTES = 2 * CHANGES_BYTES;

const PIPELINE = 'pipeline: read > LZ4 > TLS > replica write+flush';
const STAGES: ReadonlyArray<{ key: string; label: string; inMin: boolean }> = [
  { key: 'readMs', label: 'stage alone: snapshot read', inMin: true },
  { key: 'compressMs', label: 'stage alone: zero check + LZ4', inMin: true },
  { key: 'tlsMs', label: 'stage alone: TLS 1.3 loopback (compressed bytes)', inMin: true },
  { key: 'tcpMs', label: 'stage alone: TCP loopback (compressed bytes)', inMin: true },
  { key: 'replicaWriteMs', label: 'stage alone: replica write+sync+commit', inMin: true },
  { key: 'digestMs', label: 'stage alone: SHA-256 chunk digests (info)', inMin: false },
];

async function pipelineRun(
  options: BenchOptions,
  tlsDir: string,
  work: string,
): Promise<Record<string, number>> {
  await mkdir(work, { recursive: true });
  const storage = join(work, 'replica');
  await mkdir(storage);
  const disk = join(work, 'disk.raw');
  await createSparseFile(disk, DISK_BYTES);
  const counters = join(work, 'counters.json');
  const rx = await startReplicaProcess(
    options.repoRoot,
    'receiver',
    ['--tls', tlsDir, '--storage', storage, '--counters', counters],
    join(options.scratchDir, 'receiver.log'),
  );
  try {
    return await runSender(
      options.repoRoot,
      [
        '--mode',
        'delta',
        '--disk',
        disk,
        '--work',
        join(work, 'primary'),
        '--port',
        `${rx.port}`,
        '--tls',
        tlsDir,
        '--changes-bytes',
        `${CHANGES_BYTES}`,
      ],
      900_000,
    );
  } finally {
    await rx.process.stop();
    await rm(work, { recursive: true, force: true });
  }
}

async function stagesRun(
  options: BenchOptions,
  tlsDir: string,
  work: string,
): Promise<Record<string, number>> {
  await mkdir(work, { recursive: true });
  const disk = join(work, 'disk.raw');
  await createSparseFile(disk, DISK_BYTES);
  const log = join(options.scratchDir, 'sinks.log');
  const tls = await startReplicaProcess(options.repoRoot, 'tls-sink', ['--tls', tlsDir], log);
  const tcp = await startReplicaProcess(options.repoRoot, 'tcp-sink', [], log).catch(async (e: unknown) => {
    await tls.process.stop();
    throw e;
  });
  try {
    return await runSender(
      options.repoRoot,
      [
        '--mode',
        'stages',
        '--disk',
        disk,
        '--work',
        work,
        '--tls',
        tlsDir,
        '--tls-port',
        `${tls.port}`,
        '--tcp-port',
        `${tcp.port}`,
        '--changes-bytes',
        `${CHANGES_BYTES}`,
      ],
      900_000,
    );
  } finally {
    await tls.process.stop();
    await tcp.process.stop();
    await rm(work, { recursive: true, force: true });
  }
}

export const deltaCycleSuite: Suite = {
  name: 'delta',
  title:
    'Delta cycle: 1 GiB of mixed changes through the whole pipeline vs each stage alone (MB/s of changed bytes)',
  async run(options) {
    const notes: string[] = [];
    const tlsDir = await createBenchPki(join(options.scratchDir, 'pki'));
    const samples: Record<string, number[]> = { [PIPELINE]: [] };
    for (const s of STAGES) samples[s.label] = [];
    const zeroThroughCompressor: number[] = [];
    const wireOverPayload: number[] = [];
    const pipelineDetails: Record<string, number[]> = {
      wireMB: [],
      zeroBytesCaughtMB: [],
      zeroBytesInChangesMB: [],
    };
    const rate = (ms: number | undefined): number => CHANGES_BYTES / 1e6 / ((ms ?? NaN) / 1000);
    for (let rep = 0; rep < options.repetitions; rep++) {
      let compressed = NaN;
      try {
        const st = await stagesRun(options, tlsDir, join(options.scratchDir, `stages-${rep}`));
        for (const s of STAGES) samples[s.label]?.push(rate(st[s.key]));
        compressed = st['compressedBytes'] ?? NaN;
        options.log(
          `  rep ${rep + 1} stages: ${STAGES.map((s) => `${s.key.replace(/Ms$/, '')} ${rate(st[s.key]).toFixed(0)}`).join(', ')} MB/s; LZ4 ${(CHANGES_BYTES / 1e6).toFixed(0)} -> ${(compressed / 1e6).toFixed(0)} MB`,
        );
      } catch (e) {
        notes.push(`repetition ${rep + 1}: stage measurements failed: ${String(e)}`);
        options.log(`  stages failed: ${String(e)}`);
      }
      try {
        const r = await pipelineRun(options, tlsDir, join(options.scratchDir, `pipeline-${rep}`));
        samples[PIPELINE]?.push(rate(r['elapsedMs']));
        const zeroIn = r['zeroBytesInChanges'] ?? NaN;
        const caught = r['zeroBytes'] ?? NaN;
        zeroThroughCompressor.push((zeroIn - caught) / zeroIn);
        wireOverPayload.push((r['wireBytesSent'] ?? NaN) / compressed);
        pipelineDetails['wireMB']?.push((r['wireBytesSent'] ?? NaN) / 1e6);
        pipelineDetails['zeroBytesCaughtMB']?.push(caught / 1e6);
        pipelineDetails['zeroBytesInChangesMB']?.push(zeroIn / 1e6);
        if (r['changedBytes'] !== CHANGES_BYTES)
          notes.push(
            `repetition ${rep + 1}: the cut froze ${r['changedBytes']} changed bytes, expected ${CHANGES_BYTES}`,
          );
        options.log(
          `  rep ${rep + 1} pipeline: ${rate(r['elapsedMs']).toFixed(0)} MB/s (${((r['elapsedMs'] ?? 0) / 1000).toFixed(2)} s; wire ${((r['wireBytesSent'] ?? 0) / 1e6).toFixed(0)} MB; zero bytes as ZERO frames ${(caught / 1e6).toFixed(0)} of ${(zeroIn / 1e6).toFixed(0)} MB)`,
        );
      } catch (e) {
        notes.push(`repetition ${rep + 1}: pipeline run failed: ${String(e)}`);
        options.log(`  pipeline failed: ${String(e)}`);
      }
    }
    const measurements = [PIPELINE, ...STAGES.map((s) => s.label)].map((name) =>
      measurement(name, 'MB/s', true, { ours: samples[name] ?? [] }),
    );
    const pipeline = measurements[0]?.medians['ours'] ?? NaN;
    const stageMedians = STAGES.filter((s) => s.inMin).map((s) => ({
      label: s.label,
      value: median(samples[s.label] ?? []),
    }));
    const slowest = stageMedians.reduce((a, b) => (b.value < a.value ? b : a), {
      label: 'none',
      value: Infinity,
    });
    const targets: TargetCheck[] = [
      checkValue(
        PIPELINE,
        `>= 0.7 x slowest stage (${slowest.label.replace('stage alone: ', '')})`,
        pipeline / slowest.value,
        { min: 0.7 },
        'must',
      ),
      checkValue(PIPELINE, '>= 1.0 x slowest stage', pipeline / slowest.value, { min: 1.0 }, 'stretch'),
      checkValue(
        'zero blocks',
        'share of zero bytes that reached the compressor = 0',
        median(zeroThroughCompressor),
        { max: 0 },
        'must',
      ),
      checkValue(
        'wire bytes',
        'wire bytes <= 1.02 x compressed payload',
        median(wireOverPayload),
        { max: 1.02 },
        'must',
      ),
    ];
    notes.push(
      `pipeline medians: wire ${median(pipelineDetails['wireMB'] ?? []).toFixed(0)} MB; zero bytes sent as ZERO frames ${median(pipelineDetails['zeroBytesCaughtMB'] ?? []).toFixed(0)} MB of ${median(pipelineDetails['zeroBytesInChangesMB'] ?? []).toFixed(0)} MB in the changes`,
      'stage rates are changed (logical) bytes per second; network stages send the LZ4 output of the compression stage',
    );
    return { suite: 'delta', title: this.title, contenders: ['ours'], measurements, targets, notes };
  },
};

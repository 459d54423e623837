/**
 * `lag`: replication lag under sustained random writes (peers-and-limits.md G4). Two real host agents
 * (the lab's), one 1 GiB disk. First the delta throughput P is measured: replication is paused, 256 MiB
 * of churn is written, replication resumes, and the report's throughput of that cycle is P (logical
 * bytes per second). Then churn runs at 0.5 x P: random writes of 8, 16 or 64 KiB, 30 % of them to a
 * recently written place, while the primary's reported lag is sampled every second, for continuous
 * mode and for the 30 s copy frequency. Targets: p99 lag <= 1.2 x interval + 5 s; continuous <= 5 s.
 * There is no peer: the reference is the copy interval itself.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { NbdClient } from '../src/guest/nbd-client.js';
import type { RelationshipView } from '../src/host/agent/relationship-service.js';
import { HostLab } from '../src/lab/host-lab.js';
import { type BenchOptions, type Suite, checkValue, measurement } from './lib/suite.js';

const DISK_BYTES = 1024 ** 3;
const SIZES = [8 * 1024, 16 * 1024, 64 * 1024];
const MiB = 1024 * 1024;

/** Writes `totalBytes` (or until `stopAtMs`) of churn at `bytesPerSec` (Infinity: as fast as possible). */
async function churn(
  client: NbdClient,
  bytesPerSec: number,
  totalBytes: number,
  stop: { readonly atMs: number },
): Promise<number> {
  const recent: number[] = [];
  const payload = randomBytes(64 * 1024);
  const started = Date.now();
  let written = 0;
  const inflight = new Set<Promise<void>>();
  let failed: { error: unknown } | undefined;
  while (written < totalBytes && Date.now() < stop.atMs && failed === undefined) {
    const size = SIZES[Math.floor(Math.random() * SIZES.length)] ?? 8192;
    const overlap = recent.length > 0 && Math.random() < 0.3;
    // an overlapping write starts where a recent one did, but must still fit the disk at its own size
    const offset = overlap
      ? Math.min(recent[Math.floor(Math.random() * recent.length)] ?? 0, DISK_BYTES - size)
      : Math.floor(Math.random() * ((DISK_BYTES - size) / 4096)) * 4096;
    if (!overlap) {
      recent.push(offset);
      if (recent.length > 4096) recent.shift();
    }
    // every write's failure is caught here (none is left unhandled) and ends the churn with that error
    const p: Promise<void> = client
      .write(offset, payload.subarray(0, size))
      .catch((error: unknown) => {
        failed ??= { error };
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
    written += size;
    if (inflight.size >= 8) await Promise.race(inflight);
    const aheadMs = (written / bytesPerSec) * 1000 - (Date.now() - started);
    if (Number.isFinite(aheadMs) && aheadMs > 5) await new Promise((r) => setTimeout(r, aheadMs));
  }
  await Promise.all(inflight);
  if (failed !== undefined) throw failed.error;
  await client.flush();
  return written;
}

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

async function relationship(lab: HostLab): Promise<RelationshipView> {
  return lab.host('host-a').client.get<RelationshipView>('/v1/relationships/vm1');
}

/**
 * Churn at `bytesPerSec` on a relationship that was just (re-)enabled: the lag is sampled every second
 * for `durationMs` once the relationship has committed its first point (the re-enable's first cycle
 * compares the whole disk by digest; that is start-up, not the steady state this suite measures).
 */
async function measureLag(
  o: BenchOptions,
  lab: HostLab,
  client: NbdClient,
  bytesPerSec: number,
  durationMs: number,
): Promise<{ p99Ms: number; maxMs: number; samples: number; writtenBytes: number; warmupMs: number }> {
  const lags: number[] = [];
  const started = Date.now();
  const stop = { atMs: Infinity };
  const writing = churn(client, bytesPerSec, Infinity, stop);
  writing.catch(() => undefined); // awaited below; a write error must not end the process meanwhile
  let warmupMs = 0;
  try {
    while ((await relationship(lab)).report.cycles.ok < 1) {
      if (Date.now() - started > 300_000) throw new Error('no first point within 5 min of enabling');
      await new Promise((r) => setTimeout(r, 200));
    }
    warmupMs = Date.now() - started;
    stop.atMs = Date.now() + durationMs;
    while (Date.now() < stop.atMs) {
      await new Promise((r) => setTimeout(r, 1000));
      const r = await relationship(lab);
      if (r.report.lagMs !== null) lags.push(r.report.lagMs);
    }
  } finally {
    stop.atMs = 0; // on any way out the churn stops before the client is closed
  }
  const writtenBytes = await writing;
  o.log(
    `    first point after ${(warmupMs / 1000).toFixed(1)} s; ${lags.length} lag samples, p99 ${percentile(lags, 99)} ms, max ${Math.max(...lags)} ms`,
  );
  return {
    p99Ms: percentile(lags, 99),
    maxMs: Math.max(...lags),
    samples: lags.length,
    writtenBytes,
    warmupMs,
  };
}

export const replicationLagSuite: Suite = {
  name: 'lag',
  title:
    'Replication lag under sustained random writes (8/16/64 KiB, 30 % overlap) at 0.5 x delta throughput',
  async run(o) {
    const lab = await HostLab.create(join(o.scratchDir, 'lag'), [
      { hostId: 'host-a' },
      { hostId: 'host-b', authorize: ['host-a'] },
    ]);
    const notes: string[] = [];
    try {
      const a = lab.host('host-a');
      const b = lab.host('host-b');
      await a.client.post('/v1/disks', { diskId: 'd0', sizeBytes: DISK_BYTES });
      const enable = async (copyFrequencySeconds: number): Promise<void> => {
        await a.client.delete('/v1/relationships/vm1');
        await a.client.post('/v1/relationships', {
          vmId: 'vm1',
          diskIds: ['d0'],
          replica: { hostId: 'host-b', address: '127.0.0.1', port: b.replicationPort },
          policy: { copyFrequencySeconds },
        });
      };
      const client = await NbdClient.connect({ socketPath: a.nbdSocket, exportName: 'd0' });
      try {
        // 1. P: one cycle that ships 256 MiB of churn.
        await enable(0);
        await a.client.post('/v1/relationships/vm1/pause');
        await churn(client, Infinity, 256 * MiB, { atMs: Infinity });
        const before = (await relationship(lab)).report;
        const resumedMs = Date.now();
        await a.client.post('/v1/relationships/vm1/resume');
        // The next (empty) continuous cycle overwrites the report's last-cycle throughput, so P is the
        // bytes this cycle shipped over the time to its commit (polled every 100 ms).
        let p = 0;
        for (let i = 0; i < 3000 && p === 0; i++) {
          await new Promise((r) => setTimeout(r, 100));
          const r = (await relationship(lab)).report;
          if (r.cycles.ok > before.cycles.ok) {
            p = ((r.bytes.logicalSent - before.bytes.logicalSent) * 1000) / (Date.now() - resumedMs);
          }
        }
        if (p === 0) throw new Error('the delta cycle did not finish in 5 min');
        o.log(
          `  delta throughput P = ${(p / MiB).toFixed(1)} MiB/s (logical); churn at ${(p / 2 / MiB).toFixed(1)} MiB/s`,
        );
        notes.push(
          `delta throughput P = ${(p / MiB).toFixed(1)} MiB/s logical (one cycle of 256 MiB of churn)`,
        );

        // 2. continuous, then 30 s copy frequency, at half of P.
        const continuousMs = Math.max(30, o.runtimeSeconds * 8) * 1000;
        o.log(`  continuous mode, ${continuousMs / 1000} s`);
        await enable(0);
        const cont = await measureLag(o, lab, client, p / 2, continuousMs);
        const thirtyMs = Math.max(60, o.runtimeSeconds * 20) * 1000;
        o.log(`  30 s copy frequency, ${thirtyMs / 1000} s`);
        await enable(30);
        const thirty = await measureLag(o, lab, client, p / 2, thirtyMs);
        notes.push(
          `continuous: ${cont.samples} samples, max ${(cont.maxMs / 1000).toFixed(1)} s; 30 s: ${thirty.samples} samples, max ${(thirty.maxMs / 1000).toFixed(1)} s`,
          `sampling starts at the first point after each re-enable (continuous after ${(cont.warmupMs / 1000).toFixed(1)} s, 30 s after ${(thirty.warmupMs / 1000).toFixed(1)} s), churn runs from the re-enable`,
        );
        const mCont = measurement('lag p99, continuous', 's', false, { ours: [cont.p99Ms / 1000] });
        const mThirty = measurement('lag p99, copy every 30 s', 's', false, { ours: [thirty.p99Ms / 1000] });
        return {
          suite: 'lag',
          title: this.title,
          contenders: ['ours'],
          measurements: [mCont, mThirty],
          targets: [
            checkValue(
              mCont.name,
              'p99 lag <= 5 s (ratio = p99 / 5 s)',
              cont.p99Ms / 5000,
              { max: 1 },
              'must',
            ),
            checkValue(
              mThirty.name,
              'p99 lag <= 1.2 x 30 s + 5 s = 41 s (ratio = p99 / 41 s)',
              thirty.p99Ms / 41_000,
              { max: 1 },
              'must',
            ),
          ],
          notes,
        };
      } finally {
        await client.close();
      }
    } finally {
      await lab.stop();
    }
  },
};

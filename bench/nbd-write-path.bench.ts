/**
 * NBD write path (goal G1 of peers-and-limits.md section 4): the five fio jobs of section 2.6 against
 * qemu-nbd, nbdkit-file and a real `secondsite host serve` agent, interleaved, median of the repetitions.
 * Must: ours >= 0.8 x qemu-nbd on the random jobs, >= 0.9 x on the sequential ones. Stretch: 4k QD1 >=
 * 1.0 x qemu-nbd; 4k QD32 and randread >= 0.5 x nbdkit; sequential >= 0.7 x nbdkit.
 *
 * A second suite, `tracking`, prices change tracking: the same jobs against NbdServer + FileBlockDevice
 * with and without the ChangeTrackingFilter (bench-only server, bench/servers/bare-nbd.server.ts: the
 * agent tracks every disk and has no switch to turn it off, so "ours" in the `nbd` suite is tracking on).
 * Both servers run at once and each job is measured on one, the other, the other again and the first
 * again (pairwise A B B A, the first rotating), so the samples of a job are seconds apart and the
 * position in the pair is balanced. It runs twice the repetitions asked for (6 by default): a server
 * process (with its file) keeps a speed of its own, 10-25 % apart between processes, for all its
 * samples (2026-11-23: in one repetition all four 1M samples with tracking on were above all four
 * with it off, in another the reverse), so the number of process pairs, not of samples, decides how
 * well a 5 % difference can be judged. Must: on >= 0.95 x off on every job; stretch >= 0.98 x.
 */
import { NBD_JOBS } from './lib/fio.js';
import { runNbdMatrix } from './lib/nbd-matrix.js';
import { nbdkitFile, oursAgent, oursBare, qemuNbd } from './lib/nbd-servers.js';
import { checkRatio, type Suite, type TargetCheck } from './lib/suite.js';

export const nbdWritePathSuite: Suite = {
  name: 'nbd',
  title: 'NBD write path: ours vs qemu-nbd and nbdkit (fio nbd engine, unix socket, 2 GiB sparse raw file)',
  async run(options) {
    const servers = [qemuNbd, nbdkitFile, oursAgent];
    const { measurements, notes, commands } = await runNbdMatrix(servers, options);
    const targets: TargetCheck[] = [];
    for (const m of measurements) {
      const job = NBD_JOBS.find((j) => j.label === m.name);
      const seq = job?.sequential ?? false;
      const mustMin = seq ? 0.9 : 0.8;
      targets.push(
        checkRatio(m, 'ours', 'qemu-nbd', { min: mustMin }, 'must', `ours >= ${mustMin} x qemu-nbd`),
      );
      if (job?.id === 'randwrite-4k-qd1') {
        targets.push(checkRatio(m, 'ours', 'qemu-nbd', { min: 1.0 }, 'stretch', 'ours >= 1.0 x qemu-nbd'));
      } else {
        const s = seq ? 0.7 : 0.5;
        targets.push(checkRatio(m, 'ours', 'nbdkit', { min: s }, 'stretch', `ours >= ${s} x nbdkit`));
      }
    }
    for (const [c, lines] of Object.entries(commands)) notes.push(`${c}: ${lines.join(' ; ')}`);
    return {
      suite: 'nbd',
      title: this.title,
      contenders: servers.map((s) => s.contender),
      measurements,
      targets,
      notes,
    };
  },
};

export const nbdTrackingSuite: Suite = {
  name: 'tracking',
  title: 'Change tracking cost on the NBD write path: NbdServer + FileBlockDevice, filter off vs on',
  async run(options) {
    const servers = [oursBare(false), oursBare(true)];
    const repetitions = options.repetitions * 2;
    const { measurements, notes, commands } = await runNbdMatrix(
      servers,
      { ...options, repetitions },
      undefined,
      { pairwise: true },
    );
    notes.push(
      `${repetitions} repetitions (twice --reps): a server process keeps its speed for a repetition, so the repetitions, not the samples, are the independent draws`,
    );
    const targets: TargetCheck[] = [];
    for (const m of measurements) {
      targets.push(
        checkRatio(m, 'ours-ct-on', 'ours-ct-off', { min: 0.95 }, 'must', 'tracking on >= 0.95 x off'),
      );
      targets.push(
        checkRatio(m, 'ours-ct-on', 'ours-ct-off', { min: 0.98 }, 'stretch', 'tracking on >= 0.98 x off'),
      );
    }
    for (const [c, lines] of Object.entries(commands)) notes.push(`${c}: ${lines.join(' ; ')}`);
    return {
      suite: 'tracking',
      title: this.title,
      contenders: servers.map((s) => s.contender),
      measurements,
      targets,
      notes,
    };
  },
};

/** Experiment (opt-in): small writes as synchronous pwrite vs the libuv threadpool, same bare server. */
export const nbdSyncWriteExperiment: Suite = {
  name: 'nbd-sync',
  title:
    'Experiment: writes <= 16 KiB as synchronous pwrite on the main thread vs the threadpool (bare server, no tracking)',
  optIn: true,
  async run(options) {
    const servers = [oursBare(false, 'threadpool'), oursBare(false, { syncWritesMaxBytes: 16 * 1024 })];
    const { measurements, notes, commands } = await runNbdMatrix(servers, options);
    const targets = measurements.map((m) =>
      checkRatio(
        m,
        'ours-ct-off-sync',
        'ours-ct-off-pool',
        { min: 1.0 },
        'stretch',
        'sync small writes >= 1.0 x threadpool',
      ),
    );
    for (const [c, lines] of Object.entries(commands)) notes.push(`${c}: ${lines.join(' ; ')}`);
    return {
      suite: 'nbd-sync',
      title: this.title,
      contenders: servers.map((s) => s.contender),
      measurements,
      targets,
      notes,
    };
  },
};

/** Opt-in: the agent against the bare server with the same filter, to separate agent from server cost. */
export const nbdAgentVsBare: Suite = {
  name: 'nbd-agent',
  title:
    'The host agent vs the bare server with the same tracking filter (NbdServer + filter + FileBlockDevice)',
  optIn: true,
  async run(options) {
    const servers = [oursAgent, oursBare(true)];
    const { measurements, notes, commands } = await runNbdMatrix(servers, options);
    const targets = measurements.map((m) =>
      checkRatio(m, 'ours', 'ours-ct-on', { min: 0.95 }, 'stretch', 'agent >= 0.95 x bare server'),
    );
    for (const [c, lines] of Object.entries(commands)) notes.push(`${c}: ${lines.join(' ; ')}`);
    return {
      suite: 'nbd-agent',
      title: this.title,
      contenders: servers.map((s) => s.contender),
      measurements,
      targets,
      notes,
    };
  },
};

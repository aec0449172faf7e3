/**
 * Helpers every benchmark shares: progress lines, seeded randomness, statistics, number
 * formatting, and what was measured (commit, load).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const started = process.hrtime.bigint();

/** Prints a progress line with the seconds since the benchmark started. */
export function progress(message: string): void {
  const s = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(`[${s.toFixed(1).padStart(6)}s] ${message}`);
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** Small, fast, seeded PRNG (the simulator's mulberry32); returns floats in [0, 1). */
export { mulberry32 } from '../sim/random.js';

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Nearest-rank percentile of an already sorted array (NaN when empty). */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i] as number;
}

export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Commit of the working tree and whether packages/ differs from it (what was measured). */
export function gitState(): { commit: string; packagesDirty: boolean | null } {
  try {
    const opts = {
      encoding: 'utf8' as const,
      stdio: ['ignore', 'pipe', 'ignore'] as ('ignore' | 'pipe')[],
    };
    const commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], opts).trim();
    const status = execFileSync(
      'git',
      ['status', '--porcelain', '--', 'packages/*/src'],
      opts,
    ).trim();
    return { commit, packagesDirty: status.length > 0 };
  } catch {
    return { commit: 'unknown', packagesDirty: null };
  }
}

export const loadAverage = (): number[] => loadavg().map((v) => round(v, 2));

/** A plain-text table: first column left-aligned, the others right-aligned. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = (rows[0] as readonly string[]).map((_, c) =>
    Math.max(...rows.map((r) => (r[c] as string).length)),
  );
  const line = (r: readonly string[]): string =>
    r
      .map((cell, c) =>
        c === 0 ? cell.padEnd(widths[c] as number) : cell.padStart(widths[c] as number),
      )
      .join('  ');
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(rows[0] as readonly string[]), sep, ...rows.slice(1).map(line)].join('\n');
}

/**
 * The command line that ran the benchmark, with paths relative to the repository (results are
 * committed, and no path of the measuring machine belongs in them).
 */
export function nodeCommand(): string {
  const repo = fileURLToPath(new URL('..', import.meta.url));
  return ['node', ...process.execArgv, ...process.argv.slice(1)]
    .map((arg) => (arg.startsWith(repo) ? arg.slice(repo.length) : arg))
    .join(' ');
}

/** A running `openclaw-edge serve` child process. */
export interface EdgeProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** SIGTERM, then SIGKILL if it has not exited within 15 s. */
  stop(): Promise<void>;
}

/**
 * Starts `openclaw-edge serve --config configPath` from the TypeScript sources on a free port
 * (PORT=0), with the bench's logging env removed, and resolves once its "ready" line gives the
 * address.
 */
export function startEdgeProcess(configPath: string, label = 'edge'): Promise<EdgeProcess> {
  const repo = fileURLToPath(new URL('..', import.meta.url));
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1' };
  for (const k of [
    'LOG_LEVEL',
    'OPENCLAW_EDGE_DATA_DIR',
    'OPENCLAW_EDGE_LOG_FORMAT',
    'DATABASE_URL',
  ])
    delete env[k];
  // OPENCLAW_BENCH_CPU_PROF=DIR: each server writes a V8 CPU profile into DIR when it stops.
  const profileDir = process.env.OPENCLAW_BENCH_CPU_PROF;
  const args = [
    '--max-semi-space-size=64', // as `npm start` runs it
    ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
    '--conditions=@openclaw-edge/source',
    '--import',
    'tsx',
    join(repo, 'packages', 'server', 'src', 'main.ts'),
    'serve',
    '--config',
    configPath,
  ];
  const child = spawn(process.execPath, args, {
    cwd: repo,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (c: string) => {
    stderr = (stderr + c).slice(-4000);
  });
  // A benchmark that fails or is interrupted must not leave servers running behind it.
  const killChild = () => child.kill('SIGKILL');
  process.once('exit', killChild);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      process.off('exit', killChild);
      resolve();
    }),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${label}: not ready within 30 s\n${stderr}`));
    }, 30_000);
    let partial = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        let rec: { msg?: string; address?: string };
        try {
          rec = JSON.parse(line) as typeof rec;
        } catch {
          continue; // not a log line
        }
        if (process.env.BENCH_SHOW_WARNINGS && Number((rec as { level?: number }).level) >= 40) {
          console.error(`${label}: ${line}`);
        }
        if (rec.msg !== 'ready' || rec.address === undefined) continue;
        clearTimeout(timer);
        resolve({
          url: rec.address,
          child,
          stop: async () => {
            child.kill('SIGTERM');
            await Promise.race([exited, sleep(15_000)]);
            if (child.exitCode === null) child.kill('SIGKILL');
          },
        });
      }
    });
    void exited.then(() => reject(new Error(`${label}: exited before ready\n${stderr}`)));
  });
}

/** Clock ticks per second of /proc's CPU times (Linux default 100). */
export const clockTicks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system) a process has used, from /proc; NaN where unavailable. */
export function procCpuS(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return Number.NaN;
  }
}

/**
 * Where the http bench pins its processes: each server on `server`, the load generators (the
 * bench process, loadgen) on `load`. On two vCPUs shared by server and generator, the scheduler
 * otherwise moves them between the cores, and the same server's cost per request switches
 * between two levels for seconds at a time (BENCHMARKS.md, "The check on the connection").
 * Undefined where pinning cannot be done: no `taskset` (Debian package util-linux), or one CPU.
 */
export function cpuPinning(): { readonly server: number; readonly load: number } | undefined {
  if (cpus().length < 2) return undefined;
  const probe = spawnSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
  return probe.status === 0 ? { server: 0, load: 1 } : undefined;
}

/** Pins every thread of `pid` (and the threads it starts later) to `cpu`; false if refused. */
export function pinToCpu(pid: number, cpu: number): boolean {
  const r = spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
  return r.status === 0;
}
